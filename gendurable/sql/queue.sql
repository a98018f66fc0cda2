-- name: queue_set_paused
-- Pause or resume a queue for every worker in the cluster.
INSERT INTO gen_durable_queues (name, paused, updated_at)
VALUES (%(name)s, %(paused)s, now())
ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, updated_at = now();

-- name: queue_notify
-- Wake the workers of a queue, for example after it was resumed.
SELECT pg_notify('gen_durable', %(name)s);

-- name: queue_stats
-- Count rows by queue and status, with the oldest runnable row's wait, for `gendurable status`.
-- Available rows not yet due (countdown, eta, retry backoff) count as 'scheduled'.
SELECT g.queue,
       CASE WHEN g.status = 'available' AND g.run_at > now() THEN 'scheduled'
            ELSE g.status::text END AS status,
       count(*) AS count,
       extract(epoch FROM now() - min(g.run_at) FILTER (
           WHERE g.status = 'available' AND g.run_at <= now())) AS oldest_wait_seconds,
       count(*) FILTER (WHERE g.finished_at > now() - interval '1 minute') AS finished_last_minute,
       coalesce(bool_or(q.paused), false) AS paused
FROM gen_durable AS g
LEFT JOIN gen_durable_queues AS q ON q.name = g.queue
GROUP BY 1, 2
ORDER BY 1, 2;

-- name: queue_list_paused
-- List the paused queues.
SELECT name FROM gen_durable_queues WHERE paused ORDER BY name;

-- name: queue_lock_limited
-- Take the pick locks of queues with a global limit, until the transaction ends.
SELECT pg_advisory_xact_lock(hashtext('gendurable.queue.' || queue))
FROM unnest(%(queues)s::text[]) AS queue
ORDER BY queue;
