-- Leases and rescue, time limits, revoke, and the worker registry.

-- Per-job time limits, in seconds; NULL means the task's own (or none).
-- Adding NULL columns rewrites nothing.
ALTER TABLE refnet_jobs.jobs
    ADD COLUMN soft_limit_secs double precision,
    ADD COLUMN hard_limit_secs double precision;

-- The claim function returns whole rows: recreate it so its row type takes
-- the new columns (its body is unchanged).
DROP FUNCTION refnet_jobs.claim(text, integer, text, double precision, text[], boolean);
CREATE FUNCTION refnet_jobs.claim(
    claim_queue text, max_jobs integer, worker text, lease_secs double precision, tasks text[],
    async_commit boolean
) RETURNS SETOF refnet_jobs.jobs
LANGUAGE plpgsql
SET enable_seqscan = off
SET enable_sort = off
AS $$
BEGIN
    IF async_commit THEN
        PERFORM set_config('synchronous_commit', 'off', true);
    END IF;
    RETURN QUERY
    WITH picked AS (
        SELECT id FROM refnet_jobs.jobs
        WHERE queue = claim_queue
          AND state IN ('scheduled', 'available', 'retryable')
          AND run_at <= now()
          AND task = ANY(tasks)
        ORDER BY priority DESC, run_at, id
        LIMIT max_jobs
        FOR UPDATE SKIP LOCKED
    )
    UPDATE refnet_jobs.jobs j
    SET state = 'running', attempt = j.attempt + 1, started_at = now(),
        heartbeat_at = now(), worker_id = worker,
        lease_expires_at = now() + make_interval(secs => lease_secs)
    FROM picked WHERE j.id = picked.id
    RETURNING j.*;
END;
$$;

-- Rescue: running jobs whose lease ran out (their worker was killed or lost
-- its machine) go back in line, or end `failed` on their last attempt, or
-- `cancelled` when a revoke was waiting for them. Any number of workers may
-- call it at once: SKIP LOCKED hands each expired job to one of them. Planned
-- like the claim, so stale statistics cannot make it scan history.
CREATE FUNCTION refnet_jobs.rescue(max_jobs integer)
RETURNS TABLE (id uuid, task text, queue text, state text, worker_id text, attempt integer)
LANGUAGE sql
SET enable_seqscan = off
AS $$
    WITH expired AS (
        SELECT j.id FROM refnet_jobs.jobs j
        WHERE j.state = 'running' AND j.lease_expires_at < now()
        ORDER BY j.lease_expires_at
        LIMIT max_jobs
        FOR UPDATE SKIP LOCKED
    ), changed AS (
        UPDATE refnet_jobs.jobs j
        SET state = CASE
                WHEN j.cancel_requested_at IS NOT NULL THEN 'cancelled'
                WHEN j.attempt >= j.max_attempts THEN 'failed'
                ELSE 'retryable' END,
            errors = j.errors || jsonb_build_array(jsonb_build_object(
                'attempt', j.attempt, 'at', now(),
                'error', format('worker lost: %s stopped renewing the lease, which expired at %s%s',
                                coalesce(j.worker_id, 'its worker'), j.lease_expires_at,
                                CASE WHEN j.cancel_requested_at IS NOT NULL
                                     THEN ' (the job had been revoked)' ELSE '' END))),
            finished_at = CASE
                WHEN j.cancel_requested_at IS NOT NULL OR j.attempt >= j.max_attempts
                THEN now() END,
            run_at = now(),
            lease_expires_at = NULL
        FROM expired WHERE j.id = expired.id
        RETURNING j.id, j.task, j.queue, j.state, j.worker_id, j.attempt
    ), woken AS (
        SELECT count(pg_notify('refnet_jobs', q.queue)) AS n
        FROM (SELECT DISTINCT c.queue FROM changed c WHERE c.state = 'retryable') AS q
    )
    SELECT c.id, c.task, c.queue, c.state, c.worker_id, c.attempt FROM changed c, woken;
$$;

-- Workers: each running worker records itself and renews `expires_at` with
-- its heartbeats, so operators can tell live workers from dead ones. A worker
-- that stops cleanly deletes its row; a killed one's row expires.
CREATE TABLE refnet_jobs.workers (
    id           text PRIMARY KEY,
    host         text        NOT NULL,
    pid          integer     NOT NULL,
    queues       text[]      NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);
