-- refnet-jobs: initial schema. Every object lives in schema refnet_jobs; the
-- migrator keeps its own bookkeeping in refnet_jobs._migrations.

CREATE SCHEMA IF NOT EXISTS refnet_jobs;

-- Jobs: waiting, running and finished. Finished rows stay as history until pruned.
CREATE TABLE refnet_jobs.jobs (
    id                  uuid PRIMARY KEY,
    task                text        NOT NULL CHECK (task <> ''),
    queue               text        NOT NULL DEFAULT 'default' CHECK (queue <> ''),
    args                jsonb       NOT NULL DEFAULT '{}'::jsonb,
    state               text        NOT NULL DEFAULT 'available'
        CHECK (state IN ('scheduled', 'available', 'running', 'retryable',
                         'completed', 'failed', 'cancelled')),
    priority            smallint    NOT NULL DEFAULT 0,
    attempt             integer     NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    max_attempts        integer     NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    run_at              timestamptz NOT NULL DEFAULT now(),
    created_at          timestamptz NOT NULL DEFAULT now(),
    started_at          timestamptz,
    finished_at         timestamptz,
    heartbeat_at        timestamptz,
    worker_id           text,
    lease_expires_at    timestamptz,
    errors              jsonb       NOT NULL DEFAULT '[]'::jsonb,
    result              jsonb,
    unique_key          text,
    schedule_name       text,
    scheduled_for       timestamptz,
    tags                text[]      NOT NULL DEFAULT '{}',
    cancel_requested_at timestamptz,
    CHECK ((schedule_name IS NULL) = (scheduled_for IS NULL))
);

-- The claim index: only runnable rows, so a claim never walks history.
CREATE INDEX jobs_runnable_idx ON refnet_jobs.jobs (queue, priority DESC, run_at, id)
    WHERE state IN ('scheduled', 'available', 'retryable');

-- Live rows by queue and state, for queue depths whatever the size of history.
CREATE INDEX jobs_live_idx ON refnet_jobs.jobs (queue, state)
    WHERE state IN ('scheduled', 'available', 'running', 'retryable');

-- Running rows, for lease rescue and status.
CREATE INDEX jobs_running_idx ON refnet_jobs.jobs (lease_expires_at)
    WHERE state = 'running';

-- History: finished rows by finish time.
CREATE INDEX jobs_finished_idx ON refnet_jobs.jobs (finished_at DESC)
    WHERE finished_at IS NOT NULL;

-- At most one live job per unique key; a finished job frees its key.
CREATE UNIQUE INDEX jobs_unique_key_idx ON refnet_jobs.jobs (unique_key)
    WHERE unique_key IS NOT NULL
      AND state IN ('scheduled', 'available', 'running', 'retryable');

-- Each cron tick is enqueued at most once, whatever the number of schedulers.
CREATE UNIQUE INDEX jobs_schedule_tick_idx ON refnet_jobs.jobs (schedule_name, scheduled_for)
    WHERE schedule_name IS NOT NULL;

-- One NOTIFY per statement and queue (PostgreSQL folds identical ones within a
-- transaction). The payload is the queue name only, never job data.
CREATE FUNCTION refnet_jobs.notify_jobs_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('refnet_jobs', q.queue)
    FROM (SELECT DISTINCT queue FROM new_jobs WHERE state = 'available') AS q;
    RETURN NULL;
END;
$$;

CREATE TRIGGER jobs_notify_inserted
    AFTER INSERT ON refnet_jobs.jobs
    REFERENCING NEW TABLE AS new_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION refnet_jobs.notify_jobs_inserted();

-- Cron schedules (Celery Beat's table). One row per schedule name.
CREATE TABLE refnet_jobs.schedules (
    name           text PRIMARY KEY CHECK (name <> ''),
    cron           text        NOT NULL,
    timezone       text        NOT NULL DEFAULT 'UTC',
    task           text        NOT NULL CHECK (task <> ''),
    args           jsonb       NOT NULL DEFAULT '{}'::jsonb,
    queue          text        NOT NULL DEFAULT 'default' CHECK (queue <> ''),
    priority       smallint    NOT NULL DEFAULT 0,
    max_attempts   integer     NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    enabled        boolean     NOT NULL DEFAULT true,
    misfire_policy text        NOT NULL DEFAULT 'once'
        CHECK (misfire_policy IN ('skip', 'once', 'all')),
    misfire_cap    integer     NOT NULL DEFAULT 10 CHECK (misfire_cap >= 1),
    source         text        NOT NULL DEFAULT 'code',
    last_fire_at   timestamptz,
    next_fire_at   timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX schedules_due_idx ON refnet_jobs.schedules (next_fire_at) WHERE enabled;

-- Task catalogue: what some worker somewhere can run, so the CLI can validate
-- and route `run TASK` even for tasks that live in another service.
CREATE TABLE refnet_jobs.tasks (
    name          text PRIMARY KEY,
    queue         text        NOT NULL,
    aliases       text[]      NOT NULL DEFAULT '{}',
    max_attempts  integer     NOT NULL,
    description   text        NOT NULL DEFAULT '',
    registered_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now()
);

-- The id of the live job holding `key`, read with a fresh snapshot (a VOLATILE
-- function in READ COMMITTED), so an enqueue that waited on a concurrent insert
-- of the same key sees the row that insert committed.
CREATE FUNCTION refnet_jobs.live_job_with_key(key text) RETURNS uuid
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RETURN (SELECT id FROM refnet_jobs.jobs
            WHERE unique_key = key
              AND state IN ('scheduled', 'available', 'running', 'retryable')
            LIMIT 1);
END;
$$;
