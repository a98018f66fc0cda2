-- name: gc_sweep
-- Delete one batch of terminal rows older than the retention, keeping children of live parents.
WITH doomed AS (
    SELECT g.id
    FROM gen_durable AS g
    WHERE g.finished_at IS NOT NULL
      AND g.finished_at < now() - make_interval(secs => %(retention_seconds)s)
      AND NOT EXISTS (
          SELECT FROM gen_durable AS parent
          WHERE parent.id = g.parent_id AND parent.finished_at IS NULL)
    ORDER BY g.finished_at
    LIMIT %(batch)s
    FOR UPDATE SKIP LOCKED
)
DELETE FROM gen_durable AS g
USING doomed
WHERE g.id = doomed.id
RETURNING g.id;
