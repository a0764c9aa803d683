-- refnet-jobs: the hot path, measured (see refnet-jobs/docs/performance.md).

-- Enqueue statements send their NOTIFY themselves (one per queue and
-- statement, folded per transaction by PostgreSQL): the statement trigger with
-- its transition table cost a fifth of a single-job enqueue.
DROP TRIGGER jobs_notify_inserted ON refnet_jobs.jobs;
DROP FUNCTION refnet_jobs.notify_jobs_inserted();

-- Live counts read the runnable and the running index instead: one index
-- fewer to update on every enqueue and every claim.
DROP INDEX refnet_jobs.jobs_live_idx;

-- CHECK constraints are prepared anew by every INSERT and UPDATE statement;
-- these five and the state check cost about a fifth of a single-job enqueue. Only the state
-- check stays, since a reader cannot make sense of a row without it; the
-- library validates task, queue and attempts before they reach a row.
ALTER TABLE refnet_jobs.jobs
    DROP CONSTRAINT jobs_task_check,
    DROP CONSTRAINT jobs_queue_check,
    DROP CONSTRAINT jobs_attempt_check,
    DROP CONSTRAINT jobs_max_attempts_check,
    DROP CONSTRAINT jobs_check;

-- The claim, in a function so that its plan never depends on the table's
-- statistics: right after a queue table is emptied and refilled, its
-- statistics still describe what it held before (only finished jobs, say),
-- and the planner was seen picking a sequential scan and a sort of every row
-- for each claim. With sequential scans and sorts priced out, the claim always
-- walks the partial runnable index in its order and stops after `max_jobs`.
-- PL/pgSQL keeps the plan for the session, like a prepared statement.
--
-- With `async_commit` the claim's transaction commits without waiting for its
-- WAL flush (the worker's `async_claims` setting, on for throughput work):
-- enqueue → start saves a disk flush. Should the server crash in the next
-- fraction of a second, the claim is forgotten and the job is available
-- again while its first run may still be going: the first run's outcome is
-- refused unless the same worker claims the job again (a worker never runs a
-- job twice at once), but another worker may run it meanwhile. The setting
-- lasts until the end of the caller's transaction, so the library only
-- claims in a transaction of its own.
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
