-- Operator controls: paused queues, and revokes that skip the cancel grace.

-- A queue listed here with paused_at set is paused: claims take nothing from
-- it (workers finish what they already hold). Queues need no row otherwise.
CREATE TABLE refnet_jobs.queues (
    name      text PRIMARY KEY CHECK (name <> ''),
    paused_at timestamptz
);

-- `revoke --terminate`: drop the running attempt at once, without the grace
-- in which it may stop on its own. A constant default adds no rewrite.
ALTER TABLE refnet_jobs.jobs ADD COLUMN cancel_terminate boolean NOT NULL DEFAULT false;

-- The claim, as before, but nothing from a paused queue.
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
    IF EXISTS (SELECT 1 FROM refnet_jobs.queues q
               WHERE q.name = claim_queue AND q.paused_at IS NOT NULL) THEN
        RETURN;
    END IF;
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
