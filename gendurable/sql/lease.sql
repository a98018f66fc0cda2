-- name: lease_extend
-- Extend the leases a worker still holds; return which of them were asked to cancel.
UPDATE gen_durable
SET lease_expires_at = now() + make_interval(secs => %(lease_seconds)s)
WHERE id = ANY (%(ids)s::bigint[])
  AND lease_owner = %(owner)s
RETURNING id, cancel_requested;

-- name: lease_reap
-- Make rows whose lease expired runnable again, or fail those out of attempts.
WITH expired AS (
    SELECT id
    FROM gen_durable
    WHERE status = 'running'
      AND lease_expires_at < now()
    ORDER BY lease_expires_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE gen_durable AS g
SET status = CASE WHEN g.cancel_requested THEN 'cancelled'::durable_status
                  WHEN g.attempt >= g.max_attempts THEN 'failed'
                  ELSE 'available' END,
    run_at = now(),
    finished_at = CASE WHEN g.cancel_requested OR g.attempt >= g.max_attempts
                       THEN now() END,
    errors = g.errors || jsonb_build_array(jsonb_build_object(
        'at', now(), 'attempt', g.attempt, 'step', g.step,
        'error', format('lease held by %%s expired at %%s; the worker died or stalled',
                        g.lease_owner, g.lease_expires_at))),
    lease_owner = NULL,
    lease_expires_at = NULL
FROM expired
WHERE g.id = expired.id
RETURNING g.id, g.fsm, g.step, g.queue, g.attempt, g.status;

-- name: lease_expire_unstarted
-- Cancel rows that were not started before their expiry.
WITH overdue AS (
    SELECT id
    FROM gen_durable
    WHERE status = 'available'
      AND expires_at IS NOT NULL
      AND expires_at <= now()
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE gen_durable AS g
SET status = 'cancelled',
    finished_at = now(),
    errors = g.errors || jsonb_build_array(jsonb_build_object(
        'at', now(), 'attempt', g.attempt, 'step', g.step,
        'error', format('expired at %%s before it started', g.expires_at)))
FROM overdue
WHERE g.id = overdue.id
RETURNING g.id, g.fsm, g.queue;
