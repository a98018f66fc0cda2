-- name: schedule_register
-- Record a schedule (or its new spec); a new one starts counting ticks from now.
INSERT INTO gen_durable_schedules (name, spec, registered_at)
VALUES (%(name)s, %(spec)s, %(now)s)
ON CONFLICT (name) DO UPDATE SET spec = excluded.spec
RETURNING name, spec, registered_at, last_tick;

-- name: schedule_fire
-- Claim one tick of a schedule and insert its instance, both or neither; a tick already
-- claimed by any beat inserts nothing. The tick row gets the instance's id as it is
-- inserted, because no part of a statement can read the rows its other parts insert. It
-- gets no id when a live instance already has the correlation key.
WITH claimed AS (
    INSERT INTO gen_durable_ticks (schedule, tick, instance_id)
    SELECT %(schedule)s, %(tick)s,
           CASE WHEN EXISTS (
                    SELECT FROM gen_durable AS g
                    WHERE g.fsm = %(fsm)s AND g.correlation_key = %(correlation_key)s
                      AND g.status = ANY (g.correlation_scope))
                THEN NULL
                ELSE nextval('gen_durable_id_seq')
           END
    ON CONFLICT (schedule, tick) DO NOTHING
    RETURNING schedule, tick, instance_id
),
inserted AS (
    -- NOTE: a live instance with the same correlation key inserted by a transaction that
    -- commits while this statement runs makes this insert do nothing, and leaves the tick
    -- row with an id that no instance has.
    INSERT INTO gen_durable (
        id, fsm, step, state, queue, priority, run_at, max_attempts, timeout, expires_at,
        correlation_key, correlation_scope, concurrency_key, rate_limit, rate_partition, weight)
    SELECT claimed.instance_id, %(fsm)s, %(step)s, %(state)s, %(queue)s, %(priority)s, now(),
           %(max_attempts)s, %(timeout)s::float8,
           now() + make_interval(secs => %(expires_in)s::float8),
           %(correlation_key)s, %(correlation_scope)s::durable_status[], %(concurrency_key)s,
           %(rate_limit)s, %(rate_partition)s, %(weight)s
    FROM claimed
    WHERE claimed.instance_id IS NOT NULL
    ON CONFLICT (fsm, correlation_key)
        WHERE correlation_key IS NOT NULL AND status = ANY (correlation_scope)
        DO NOTHING
    RETURNING id
),
advanced AS (
    UPDATE gen_durable_schedules
    SET last_tick = greatest(last_tick, %(tick)s), last_fired_at = now()
    WHERE name = %(schedule)s AND EXISTS (SELECT FROM claimed)
)
SELECT EXISTS (SELECT FROM claimed) AS fired, (SELECT id FROM inserted) AS instance_id;

-- name: schedule_skip
-- Move a schedule past ticks its misfire policy drops, without firing them.
UPDATE gen_durable_schedules
SET last_tick = greatest(last_tick, %(tick)s)
WHERE name = %(schedule)s;

-- name: schedule_set_next
-- Record when each schedule fires next, for `gendurable status`.
UPDATE gen_durable_schedules AS s
SET next_tick = n.next_tick
FROM unnest(%(names)s::text[], %(next_ticks)s::timestamptz[]) AS n(name, next_tick)
WHERE s.name = n.name;

-- name: schedule_list
-- List schedules with their last and next tick.
SELECT name, spec, registered_at, last_tick, last_fired_at, next_tick
FROM gen_durable_schedules
ORDER BY name;

-- name: schedule_prune_ticks
-- Forget fired ticks older than the retention, keeping each schedule's latest.
DELETE FROM gen_durable_ticks AS t
WHERE t.fired_at < now() - make_interval(secs => %(retention_seconds)s)
  AND t.tick < (SELECT s.last_tick FROM gen_durable_schedules AS s WHERE s.name = t.schedule);

-- name: clock_now
-- Read the database clock: every due-time decision of beat uses it, never the host's.
SELECT now();

-- name: queue_due_since
-- Tell which of the given queues have rows that became due in (since, until], so beat can
-- wake their workers; one index range scan per queue and priority.
SELECT q.queue
FROM unnest(%(queues)s::text[]) AS q(queue)
WHERE EXISTS (
    SELECT FROM generate_series(0, 9) AS p(priority)
    WHERE EXISTS (
        SELECT FROM gen_durable AS g
        WHERE g.status = 'available'
          AND g.queue = q.queue
          AND g.priority = p.priority
          AND g.run_at > %(since)s
          AND g.run_at <= %(until)s));
