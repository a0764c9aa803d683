-- The storage experiment behind docs/performance.md: the same claim-then-complete
-- loop, 100 jobs per transaction, server-side (no client in the way), on
--   hx.jobs_a: finished rows updated in place (refnet-jobs' layout), and
--   hx.jobs_b + hx.history_b: finished rows moved to a day-partitioned history table.
-- Load it into a scratch database, then run history-layouts.sh.
DROP SCHEMA IF EXISTS hx CASCADE;
CREATE SCHEMA hx;
-- A: finished rows stay in the jobs table (today's design)
CREATE TABLE hx.jobs_a (
    id uuid PRIMARY KEY, task text NOT NULL, queue text NOT NULL DEFAULT 'default',
    args jsonb NOT NULL DEFAULT '{}', state text NOT NULL DEFAULT 'available',
    priority smallint NOT NULL DEFAULT 0, attempt int NOT NULL DEFAULT 0, max_attempts int NOT NULL DEFAULT 3,
    run_at timestamptz NOT NULL DEFAULT now(), created_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz, finished_at timestamptz, heartbeat_at timestamptz, worker_id text,
    lease_expires_at timestamptz, errors jsonb NOT NULL DEFAULT '[]', result jsonb, unique_key text,
    schedule_name text, scheduled_for timestamptz, tags text[] NOT NULL DEFAULT '{}', cancel_requested_at timestamptz);
CREATE INDEX ON hx.jobs_a (queue, priority DESC, run_at, id) WHERE state IN ('scheduled','available','retryable');
CREATE INDEX ON hx.jobs_a (queue, state) WHERE state IN ('scheduled','available','running','retryable');
CREATE INDEX ON hx.jobs_a (lease_expires_at) WHERE state = 'running';
CREATE INDEX ON hx.jobs_a (finished_at DESC) WHERE finished_at IS NOT NULL;
CREATE UNIQUE INDEX ON hx.jobs_a (unique_key) WHERE unique_key IS NOT NULL AND state IN ('scheduled','available','running','retryable');
CREATE UNIQUE INDEX ON hx.jobs_a (schedule_name, scheduled_for) WHERE schedule_name IS NOT NULL;
-- B: live rows only; finished rows move to a history table partitioned by day
CREATE TABLE hx.jobs_b (LIKE hx.jobs_a INCLUDING DEFAULTS);
ALTER TABLE hx.jobs_b ADD PRIMARY KEY (id);
CREATE INDEX ON hx.jobs_b (queue, priority DESC, run_at, id) WHERE state IN ('scheduled','available','retryable');
CREATE INDEX ON hx.jobs_b (queue, state);
CREATE INDEX ON hx.jobs_b (lease_expires_at) WHERE state = 'running';
CREATE UNIQUE INDEX ON hx.jobs_b (unique_key) WHERE unique_key IS NOT NULL;
CREATE UNIQUE INDEX ON hx.jobs_b (schedule_name, scheduled_for) WHERE schedule_name IS NOT NULL;
CREATE TABLE hx.history_b (LIKE hx.jobs_a INCLUDING DEFAULTS) PARTITION BY RANGE (finished_at);
DO $$ DECLARE d date; BEGIN
  FOR d IN SELECT generate_series(current_date - 40, current_date + 2, '1 day')::date LOOP
    EXECUTE format('CREATE TABLE hx.history_b_%s PARTITION OF hx.history_b FOR VALUES FROM (%L) TO (%L)',
                   to_char(d,'YYYYMMDD'), d, d + 1);
  END LOOP; END $$;
CREATE INDEX ON hx.history_b (finished_at DESC);
CREATE INDEX ON hx.history_b (id);

CREATE PROCEDURE hx.drain(kind text, batch int, INOUT jobs int DEFAULT 0) LANGUAGE plpgsql AS $$
DECLARE ids uuid[];
BEGIN
  LOOP
    IF kind = 'a' THEN
      WITH p AS (SELECT id FROM hx.jobs_a WHERE queue='bench' AND state IN ('scheduled','available','retryable') AND run_at <= now()
                 ORDER BY priority DESC, run_at, id LIMIT batch FOR UPDATE SKIP LOCKED),
           u AS (UPDATE hx.jobs_a j SET state='running', attempt=j.attempt+1, started_at=now(), heartbeat_at=now(),
                  worker_id='w', lease_expires_at=now()+interval '30 s' FROM p WHERE j.id=p.id RETURNING j.*)
      SELECT array_agg(id) INTO ids FROM u;
    ELSE
      WITH p AS (SELECT id FROM hx.jobs_b WHERE queue='bench' AND state IN ('scheduled','available','retryable') AND run_at <= now()
                 ORDER BY priority DESC, run_at, id LIMIT batch FOR UPDATE SKIP LOCKED),
           u AS (UPDATE hx.jobs_b j SET state='running', attempt=j.attempt+1, started_at=now(), heartbeat_at=now(),
                  worker_id='w', lease_expires_at=now()+interval '30 s' FROM p WHERE j.id=p.id RETURNING j.*)
      SELECT array_agg(id) INTO ids FROM u;
    END IF;
    EXIT WHEN ids IS NULL;
    COMMIT;
    IF kind = 'a' THEN
      UPDATE hx.jobs_a SET state='completed', result='null', finished_at=now(), lease_expires_at=NULL
       WHERE id = ANY(ids) AND worker_id='w' AND state='running';
    ELSE
      WITH d AS (DELETE FROM hx.jobs_b WHERE id = ANY(ids) AND worker_id='w' AND state='running' RETURNING *)
      INSERT INTO hx.history_b (id, task, queue, args, state, priority, attempt, max_attempts, run_at, created_at,
             started_at, finished_at, heartbeat_at, worker_id, lease_expires_at, errors, result, unique_key,
             schedule_name, scheduled_for, tags, cancel_requested_at)
      SELECT id, task, queue, args, 'completed', priority, attempt, max_attempts, run_at, created_at,
             started_at, now(), heartbeat_at, worker_id, NULL, errors, 'null', unique_key,
             schedule_name, scheduled_for, tags, cancel_requested_at FROM d;
    END IF;
    COMMIT;
    jobs := jobs + array_length(ids, 1);
  END LOOP;
END $$;
