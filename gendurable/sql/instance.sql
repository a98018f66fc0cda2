-- name: instance_insert
-- Insert one instance. With a correlation key taken, return the live row that has it.
WITH inserted AS (
    INSERT INTO gen_durable (
        fsm, step, state, queue, priority, run_at, max_attempts, timeout, expires_at,
        correlation_key, correlation_scope, concurrency_key, rate_limit, rate_partition,
        weight, parent_id)
    VALUES (
        %(fsm)s, %(step)s, %(state)s, %(queue)s, %(priority)s,
        coalesce(%(run_at)s::timestamptz, now()) + make_interval(secs => %(delay)s::float8),
        %(max_attempts)s, %(timeout)s::float8,
        coalesce(%(expires_at)s::timestamptz, now() + make_interval(secs => %(expires_in)s::float8)),
        %(correlation_key)s, %(correlation_scope)s::durable_status[], %(concurrency_key)s,
        %(rate_limit)s, %(rate_partition)s, %(weight)s, %(parent_id)s::bigint)
    ON CONFLICT (fsm, correlation_key)
        WHERE correlation_key IS NOT NULL AND status = ANY (correlation_scope)
        DO NOTHING
    RETURNING id
)
SELECT id, true AS inserted FROM inserted
UNION ALL
SELECT existing.id, false
FROM gen_durable AS existing
WHERE NOT EXISTS (SELECT FROM inserted)
  AND existing.fsm = %(fsm)s
  AND existing.correlation_key = %(correlation_key)s
  AND existing.status = ANY (existing.correlation_scope);

-- name: instance_insert_many
-- Insert many instances in one statement; rows whose correlation key is taken are skipped.
-- Children (rows with a parent) go in only while the caller still holds the parent's lease,
-- and take their ids from the sequence here (bulk inserts reserve theirs beforehand).
INSERT INTO gen_durable (
    id, fsm, step, state, queue, priority, run_at, max_attempts, timeout, expires_at,
    correlation_key, correlation_scope, concurrency_key, rate_limit, rate_partition,
    weight, parent_id)
SELECT
    coalesce(r.id, nextval('gen_durable_id_seq')), r.fsm, r.step, r.state, r.queue, r.priority,
    coalesce(r.run_at, now()) + make_interval(secs => r.delay),
    r.max_attempts, r.timeout,
    coalesce(r.expires_at, now() + make_interval(secs => r.expires_in)), r.correlation_key,
    r.scope::durable_status[],
    r.concurrency_key, r.rate_limit, r.rate_partition, r.weight, r.parent_id
FROM unnest(
    %(id)s::bigint[], %(fsm)s::text[], %(step)s::text[], %(state)s::jsonb[], %(queue)s::text[],
    %(priority)s::smallint[], %(run_at)s::timestamptz[], %(delay)s::float8[],
    %(max_attempts)s::int[], %(timeout)s::float8[], %(expires_at)s::timestamptz[],
    %(expires_in)s::float8[],
    %(correlation_key)s::text[], %(scope)s::text[], %(concurrency_key)s::text[],
    %(rate_limit)s::text[], %(rate_partition)s::text[], %(weight)s::int[],
    %(parent_id)s::bigint[]
) WITH ORDINALITY AS r(
    id, fsm, step, state, queue, priority, run_at, delay, max_attempts, timeout, expires_at,
    expires_in, correlation_key, scope, concurrency_key, rate_limit, rate_partition, weight, parent_id, n)
WHERE r.parent_id IS NULL
   OR EXISTS (
       SELECT FROM gen_durable AS parent
       WHERE parent.id = r.parent_id AND parent.lease_owner = %(owner)s)
ORDER BY r.n
ON CONFLICT (fsm, correlation_key)
    WHERE correlation_key IS NOT NULL AND status = ANY (correlation_scope)
    DO NOTHING
RETURNING id;

-- name: instance_reserve_ids
-- Reserve ids for a bulk insert, so that handles are known before the rows are written. The
-- clock reading schedules COPY rows on the database's time.
SELECT array_agg(nextval('gen_durable_id_seq')), clock_timestamp()
FROM generate_series(1, %(count)s);

-- name: instance_find_correlated
-- Find the live rows holding the given correlation keys of one FSM.
SELECT fsm, correlation_key, id
FROM gen_durable
WHERE (fsm, correlation_key) IN (SELECT * FROM unnest(%(fsm)s::text[], %(correlation_key)s::text[]))
  AND status = ANY (correlation_scope);

-- name: instance_get
-- Read one instance for a handle or for `gendurable inspect`.
SELECT id, fsm, step, state, status, queue, priority, run_at, attempt, max_attempts,
       correlation_key, concurrency_key, parent_id, pending_children, lease_owner,
       lease_expires_at, cancel_requested, result, errors, inserted_at, attempted_at,
       finished_at, expires_at, awaited_signals, await_until, inbox, joining
FROM gen_durable
WHERE id = %(id)s;

-- name: instance_status
-- Read the status, result and last error of one instance, for Handle.status() and result().
SELECT status, result, errors -> -1 AS last_error
FROM gen_durable
WHERE id = %(id)s;

-- name: instance_cancel
-- Cancel a waiting row and its live descendants at once; ask lease holders to stop running ones.
WITH RECURSIVE family AS (
    SELECT id FROM gen_durable WHERE id = %(id)s
    UNION
    SELECT child.id
    FROM gen_durable AS child
    JOIN family ON child.parent_id = family.id
    WHERE child.finished_at IS NULL
)
UPDATE gen_durable AS g
SET status = CASE WHEN g.status = 'running' THEN g.status ELSE 'cancelled' END,
    finished_at = CASE WHEN g.status = 'running' THEN NULL ELSE now() END,
    cancel_requested = true,
    awaited_signals = NULL,
    await_until = NULL
FROM family
WHERE g.id = family.id
  AND g.status IN ('available', 'running', 'awaiting')
RETURNING g.id, g.status;

-- name: instance_retry
-- Put a finished or waiting row back to run now, with a fresh count of attempts.
UPDATE gen_durable
SET status = 'available', run_at = now(), attempt = 0, max_attempts = greatest(max_attempts, 1),
    finished_at = NULL, cancel_requested = false, awaited_signals = NULL
WHERE id = %(id)s
  AND status IN ('failed', 'cancelled', 'done', 'available', 'awaiting')
RETURNING id, status;

-- name: instance_pick
-- Lease the most urgent due rows of each queue, as many as the caller has free slots.
-- Each queue's scan starts after the caller's cursor (the key of the last row it picked while
-- a backlog lasted, or a key before every row), which skips the dead index entries that the
-- rows picked before leave at the front of the index until vacuum removes them.
WITH demand AS (
    SELECT d.queue, d.free, d.global_limit, d.after_priority, d.after_run_at, d.after_id
    FROM unnest(%(queues)s::text[], %(free)s::int[], %(global_limits)s::int[],
                %(after_priority)s::smallint[], %(after_run_at)s::timestamptz[],
                %(after_id)s::bigint[])
         AS d(queue, free, global_limit, after_priority, after_run_at, after_id)
    WHERE NOT EXISTS (
        SELECT FROM gen_durable_queues AS q WHERE q.name = d.queue AND q.paused)
),
wanted AS (
    SELECT demand.queue, demand.after_priority, demand.after_run_at, demand.after_id,
           CASE WHEN demand.global_limit IS NULL THEN demand.free
                ELSE least(demand.free, greatest(0, demand.global_limit - (
                    SELECT count(*) FROM gen_durable AS r
                    WHERE r.status = 'running' AND r.queue = demand.queue)))
           END AS free
    FROM demand
),
locked AS (
    SELECT candidate.id, candidate.concurrency_key, candidate.priority, candidate.run_at
    FROM wanted
    CROSS JOIN LATERAL (
        SELECT g.id, g.concurrency_key, g.priority, g.run_at
        FROM gen_durable AS g
        WHERE g.status = 'available'
          AND g.queue = wanted.queue
          AND (g.priority, g.run_at, g.id)
              > (wanted.after_priority, wanted.after_run_at, wanted.after_id)
          AND g.run_at <= now() + make_interval(secs => %(horizon)s)
          AND (g.expires_at IS NULL OR g.expires_at > now())
          AND (g.concurrency_key IS NULL OR NOT EXISTS (
              SELECT FROM gen_durable AS busy
              WHERE busy.concurrency_key = g.concurrency_key AND busy.status = 'running'))
        ORDER BY g.priority, g.run_at, g.id
        LIMIT wanted.free
        FOR UPDATE SKIP LOCKED
    ) AS candidate
),
-- At most one row per concurrency key in a batch: the most urgent one. The locked rows carry
-- what the ranking needs, because joining them back to the table lets the generic plan, which
-- cannot know the batch is small, choose a scan of the whole table.
picked AS (
    SELECT id
    FROM (
        SELECT locked.id,
               row_number() OVER (
                   PARTITION BY coalesce(locked.concurrency_key, locked.id::text)
                   ORDER BY locked.priority, locked.run_at, locked.id) AS rank
        FROM locked
    ) AS ranked
    WHERE rank = 1
)
UPDATE gen_durable AS g
SET status = 'running',
    attempt = g.attempt + 1,
    lease_owner = %(owner)s,
    lease_expires_at = now() + make_interval(secs => %(lease_seconds)s),
    attempted_at = now()
-- An id array, not a join, so that the planner looks the rows up by primary key instead of
-- hashing a scan of the whole table.
WHERE g.id = ANY (ARRAY(SELECT id FROM picked))
RETURNING g.id, g.fsm, g.step, g.state, g.queue, g.priority, g.attempt, g.max_attempts,
          g.timeout, g.correlation_key, g.concurrency_key, g.inserted_at, g.errors, g.run_at,
          g.attempted_at,
          g.awaited_signals,
          CASE WHEN g.inbox <> '[]' THEN (
              SELECT jsonb_agg(jsonb_build_object(
                         'id', s.id, 'name', s.name, 'payload', s.payload,
                         'received_at', s.received_at) ORDER BY s.id)
              FROM gen_durable_signals AS s
              WHERE s.instance_id = g.id) END AS signals,
          CASE WHEN g.joining THEN (
              SELECT jsonb_agg(jsonb_build_object(
                         'id', c.id, 'fsm', c.fsm, 'status', c.status, 'result', c.result,
                         'error', c.errors -> -1) ORDER BY c.id)
              FROM gen_durable AS c
              WHERE c.parent_id = g.id AND c.id >= g.children_since) END AS children;

-- name: instance_apply_outcomes
-- Apply the outcomes of finished attempts, only where the caller still holds the lease.
-- Expressions that read the inbox or the children count are evaluated on the row's newest
-- version, so a signal sent while the step ran is never missed.
WITH outcome AS (
    SELECT o.id, o.attempted_at, o.status, o.step, o.state, o.delay, o.reset_attempt,
           o.result, o.error, o.joining,
           CASE WHEN o.awaited IS NOT NULL
                THEN ARRAY(SELECT jsonb_array_elements_text(o.awaited)) END AS awaited,
           CASE WHEN o.consumed IS NOT NULL
                THEN ARRAY(SELECT jsonb_array_elements_text(o.consumed)::bigint) END AS consumed
    FROM unnest(
        %(id)s::bigint[], %(attempted_at)s::timestamptz[], %(status)s::durable_status[],
        %(step)s::text[], %(state)s::jsonb[], %(delay)s::float8[], %(reset_attempt)s::bool[],
        %(result)s::jsonb[], %(error)s::jsonb[], %(awaited)s::jsonb[], %(consumed)s::jsonb[],
        %(joining)s::bool[])
        AS o(id, attempted_at, status, step, state, delay, reset_attempt, result, error,
             awaited, consumed, joining)
),
applied AS (
    UPDATE gen_durable AS g
    SET status = CASE
            WHEN g.cancel_requested THEN 'cancelled'
            WHEN o.status <> 'awaiting' THEN o.status
            WHEN o.joining AND counted.pending = 0 THEN 'available'::durable_status
            WHEN o.joining THEN 'awaiting'::durable_status
            WHEN gen_durable_signal_ready(g.inbox, o.awaited, o.consumed)
                THEN 'available'::durable_status
            ELSE 'awaiting'::durable_status END,
        step = coalesce(o.step, g.step),
        state = coalesce(o.state, g.state),
        run_at = CASE
            WHEN o.status = 'awaiting' THEN now()
            WHEN o.delay IS NULL THEN g.run_at
            ELSE now() + make_interval(secs => o.delay) END,
        await_until = CASE
            WHEN o.status = 'awaiting' AND NOT o.joining AND o.delay IS NOT NULL
                THEN now() + make_interval(secs => o.delay) END,
        attempt = CASE WHEN o.reset_attempt THEN 0 ELSE g.attempt END,
        result = CASE WHEN g.cancel_requested THEN NULL ELSE o.result END,
        errors = CASE WHEN o.error IS NULL THEN g.errors
                      ELSE g.errors || jsonb_build_array(o.error) END,
        finished_at = CASE WHEN g.cancel_requested OR o.status IN ('done', 'failed', 'cancelled')
                           THEN now() END,
        -- A retried step (no progress) keeps what woke it: the awaited names and the join.
        awaited_signals = CASE
            WHEN o.status = 'awaiting' AND NOT o.joining THEN o.awaited
            WHEN o.status = 'available' AND NOT o.reset_attempt THEN g.awaited_signals END,
        -- A terminal status empties the inbox through the gen_durable_finished trigger.
        inbox = CASE WHEN o.consumed IS NULL THEN g.inbox
                     ELSE gen_durable_inbox_without(g.inbox, o.consumed) END,
        joining = CASE
            WHEN o.joining THEN true
            WHEN o.status = 'available' AND NOT o.reset_attempt THEN g.joining
            ELSE false END,
        children_since = CASE WHEN o.joining THEN counted.first_child ELSE g.children_since END,
        pending_children = CASE WHEN o.joining THEN counted.pending ELSE g.pending_children END,
        lease_owner = NULL,
        lease_expires_at = NULL
    FROM outcome AS o
    -- Children inserted earlier in this transaction are visible here; none has finished yet.
    -- The join step of this round is shown the children from the round's first one on.
    CROSS JOIN LATERAL (
        SELECT count(*) AS pending, coalesce(min(c.id), 0) AS first_child
        FROM gen_durable AS c
        WHERE o.joining AND c.parent_id = o.id AND c.finished_at IS NULL
    ) AS counted
    WHERE g.id = o.id
      -- Repeating the ids as an array lets the planner look rows up by primary key. A lease
      -- owner implies status running (a CHECK constraint), and naming the status would lead
      -- the planner to the index of running rows, which is full of dead entries on a busy table.
      AND g.id = ANY (%(id)s::bigint[])
      AND g.lease_owner = %(owner)s
      -- The pick's time identifies the lease: an attempt the reaper gave up on, whose row this
      -- same worker picked again, must not apply its outcome over the newer attempt.
      AND g.attempted_at = o.attempted_at
    RETURNING g.id, g.status, g.queue
),
-- Consumed signals leave the inbox table (those of an instance that ended go by trigger).
cleared AS (
    DELETE FROM gen_durable_signals AS s
    USING applied, outcome AS o
    WHERE o.id = applied.id
      AND o.consumed IS NOT NULL
      AND s.instance_id = applied.id
      AND s.id = ANY (o.consumed)
)
SELECT id, status, queue FROM applied;

-- name: instance_release
-- Hand back the leases of steps a draining worker could not finish; the attempt does not count.
UPDATE gen_durable
SET status = 'available', run_at = now(), attempt = greatest(attempt - 1, 0),
    lease_owner = NULL, lease_expires_at = NULL
WHERE id = ANY (%(ids)s::bigint[])
  AND status = 'running'
  AND lease_owner = %(owner)s
RETURNING id;

-- name: instance_queues_with_work
-- List the queues that have rows available now (or by the horizon), for drain() over every queue.
SELECT DISTINCT queue
FROM gen_durable
WHERE status = 'available'
  AND run_at <= now() + make_interval(secs => %(horizon)s);
