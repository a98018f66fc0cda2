-- name: signal_send
-- Deliver a signal to the live instance holding a correlation key; wake it if it awaits the name.
-- The row lock orders this against a concurrent outcome, which then sees the new inbox entry.
WITH target AS (
    SELECT id, status = 'awaiting' AND %(name)s = ANY (awaited_signals) AS wakes
    FROM gen_durable
    WHERE fsm = %(fsm)s
      AND correlation_key = %(correlation_key)s
      AND status = ANY (correlation_scope)
      AND status IN ('available', 'running', 'awaiting')
    FOR UPDATE
),
received AS (
    INSERT INTO gen_durable_signals (instance_id, name, payload)
    SELECT id, %(name)s, %(payload)s FROM target
    RETURNING id, instance_id
),
delivered AS (
    UPDATE gen_durable AS g
    SET inbox = g.inbox || jsonb_build_array(
            jsonb_build_object('id', received.id, 'name', %(name)s::text)),
        status = CASE WHEN g.status = 'awaiting' AND %(name)s = ANY (g.awaited_signals)
                      THEN 'available' ELSE g.status END,
        run_at = CASE WHEN g.status = 'awaiting' AND %(name)s = ANY (g.awaited_signals)
                      THEN now() ELSE g.run_at END,
        await_until = CASE WHEN g.status = 'awaiting' AND %(name)s = ANY (g.awaited_signals)
                           THEN NULL ELSE g.await_until END
    FROM received
    WHERE g.id = received.instance_id
    RETURNING g.id, g.status, g.queue
)
SELECT delivered.id, delivered.status, delivered.queue, target.wakes,
       CASE WHEN target.wakes THEN pg_notify('gen_durable', delivered.queue) END
FROM delivered
JOIN target ON target.id = delivered.id;

-- name: await_expire
-- Wake awaiting rows whose Await timeout passed; their step runs with what the inbox holds.
WITH due AS (
    SELECT id
    FROM gen_durable
    WHERE status = 'awaiting'
      AND await_until IS NOT NULL
      AND await_until <= now()
    ORDER BY await_until
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE gen_durable AS g
SET status = 'available', run_at = now(), await_until = NULL
FROM due
WHERE g.id = due.id
RETURNING g.id, g.queue, pg_notify('gen_durable', g.queue);
