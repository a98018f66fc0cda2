-- gendurable schema, version 1. Before 1.0 there is one schema version and this file is
-- edited in place; `gendurable migrate` applies it under an advisory lock.

-- Statuses, and who moves a row in and out of each:
--   available  runnable once run_at has passed. In: insert, an outcome that schedules the row
--              again (Next, Retry, an exception with attempts left), the reaper (expired lease),
--              a draining worker releasing its leases. Out: the picker.
--   running    leased to one worker (lease_owner, lease_expires_at). In: the picker. Out: the
--              lease holder applying an outcome, or the reaper once the lease expired. A crash
--              leaves the row here until the lease expires; the step then runs again.
--   awaiting   waiting for signals or children. In: an Await or Children outcome. Out: a
--              matching signal, the last child finishing, an await timeout, cancel().
--   done, failed, cancelled
--              terminal; finished_at is set. Out: only the garbage collector, after gc_retention.
CREATE TYPE durable_status AS ENUM (
    'available', 'running', 'awaiting', 'done', 'failed', 'cancelled'
);

CREATE SEQUENCE gen_durable_id_seq AS bigint;

CREATE TABLE gen_durable (
    id                 bigint PRIMARY KEY DEFAULT nextval('gen_durable_id_seq'),
    -- The resolvable name of the job or FSM class.
    fsm                text NOT NULL,
    step               text NOT NULL,
    -- Jobs keep {"args": [...], "kwargs": {...}}; FSMs keep their State model's JSON.
    state              jsonb NOT NULL DEFAULT '{}',
    status             durable_status NOT NULL DEFAULT 'available',
    queue              text NOT NULL DEFAULT 'default',
    priority           smallint NOT NULL DEFAULT 0,
    run_at             timestamptz NOT NULL DEFAULT now(),
    -- Attempts started at the current step; the picker increments it.
    attempt            integer NOT NULL DEFAULT 0,
    max_attempts       integer NOT NULL DEFAULT 20,
    -- Seconds one attempt may run; NULL means no limit.
    timeout            double precision,
    expires_at         timestamptz,
    correlation_key    text,
    correlation_scope  durable_status[] NOT NULL
                       DEFAULT '{available,running,awaiting}'::durable_status[],
    concurrency_key    text,
    rate_limit         text,
    rate_partition     text,
    weight             integer NOT NULL DEFAULT 1,
    -- While awaiting: the signal names that wake the row. Kept while the woken step runs, so
    -- that the step sees which signals it awaited.
    awaited_signals    text[],
    -- While awaiting signals with a timeout: when the reaper wakes the row without them.
    await_until        timestamptz,
    -- The pending signals, [{"id": ..., "name": ...}] in arrival order; their payloads are in
    -- gen_durable_signals. Kept on the row so that an outcome and a concurrent signal meet on
    -- one row lock.
    inbox              jsonb NOT NULL DEFAULT '[]',
    parent_id          bigint,
    pending_children   integer NOT NULL DEFAULT 0,
    -- Set by a Children outcome until the join step's outcome, so the pick loads the children.
    joining            boolean NOT NULL DEFAULT false,
    -- The first child of the last Children round: the join step sees children from it on.
    children_since     bigint NOT NULL DEFAULT 0,
    lease_owner        text,
    lease_expires_at   timestamptz,
    cancel_requested   boolean NOT NULL DEFAULT false,
    result             jsonb,
    -- One object per failed attempt: {"at", "attempt", "step", "error", "traceback"}.
    errors             jsonb NOT NULL DEFAULT '[]',
    inserted_at        timestamptz NOT NULL DEFAULT now(),
    attempted_at       timestamptz,
    finished_at        timestamptz,

    CONSTRAINT gen_durable_finished_iff_terminal CHECK (
        (status IN ('done', 'failed', 'cancelled')) = (finished_at IS NOT NULL)),
    CONSTRAINT gen_durable_lease_iff_running CHECK (
        (status = 'running') = (lease_owner IS NOT NULL AND lease_expires_at IS NOT NULL)),
    CONSTRAINT gen_durable_priority_range CHECK (priority BETWEEN 0 AND 9),
    CONSTRAINT gen_durable_attempts_positive CHECK (attempt >= 0 AND max_attempts >= 1),
    CONSTRAINT gen_durable_weight_positive CHECK (weight >= 1),
    CONSTRAINT gen_durable_timeout_positive CHECK (timeout IS NULL OR timeout > 0),
    CONSTRAINT gen_durable_children_non_negative CHECK (pending_children >= 0),
    CONSTRAINT gen_durable_names_not_empty CHECK (
        fsm <> '' AND step <> '' AND queue <> '')
);

ALTER SEQUENCE gen_durable_id_seq OWNED BY gen_durable.id;

-- The picker's index: the most urgent runnable rows of one queue come first.
CREATE INDEX gen_durable_pick ON gen_durable (queue, priority, run_at, id)
    WHERE status = 'available';

-- The reaper's index: running rows by lease expiry.
CREATE INDEX gen_durable_leases ON gen_durable (lease_expires_at)
    WHERE status = 'running';

-- Global queue limits count running rows per queue.
CREATE INDEX gen_durable_running_by_queue ON gen_durable (queue)
    WHERE status = 'running';

-- Garbage collection walks terminal rows by age.
CREATE INDEX gen_durable_finished ON gen_durable (finished_at)
    WHERE finished_at IS NOT NULL;

-- Unstarted rows with an expiry, for the reaper's expiry pass.
CREATE INDEX gen_durable_expiring ON gen_durable (expires_at)
    WHERE expires_at IS NOT NULL AND status = 'available';

-- Children by parent, for fan-in and for keeping a live parent's children out of GC.
CREATE INDEX gen_durable_children ON gen_durable (parent_id)
    WHERE parent_id IS NOT NULL;

-- One key both addresses and deduplicates: unique while the row's status is in its own scope.
CREATE UNIQUE INDEX gen_durable_correlation ON gen_durable (fsm, correlation_key)
    WHERE correlation_key IS NOT NULL AND status = ANY (correlation_scope);

-- Never two running rows with one concurrency key anywhere in the cluster.
CREATE UNIQUE INDEX gen_durable_concurrency_active ON gen_durable (concurrency_key)
    WHERE concurrency_key IS NOT NULL AND status = 'running';

-- Awaiting rows by deadline, for await timeouts.
CREATE INDEX gen_durable_await_deadline ON gen_durable (await_until)
    WHERE status = 'awaiting' AND await_until IS NOT NULL;

-- The payloads of pending signals; the row's inbox column lists them.
CREATE TABLE gen_durable_signals (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    instance_id  bigint NOT NULL,
    name         text NOT NULL CHECK (name <> ''),
    payload      jsonb,
    received_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX gen_durable_signals_instance ON gen_durable_signals (instance_id, id);

-- Whether an inbox holds a signal named in awaited, once the consumed ids are taken out.
CREATE FUNCTION gen_durable_signal_ready(inbox jsonb, awaited text[], consumed bigint[])
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT EXISTS (
        SELECT FROM jsonb_array_elements(inbox) AS entry
        WHERE entry ->> 'name' = ANY (awaited)
          AND (entry ->> 'id')::bigint <> ALL (coalesce(consumed, '{}'))
    )
$$;

-- The inbox without the consumed ids, in arrival order.
CREATE FUNCTION gen_durable_inbox_without(inbox jsonb, consumed bigint[])
RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(jsonb_agg(entry ORDER BY position), '[]')
    FROM jsonb_array_elements(inbox) WITH ORDINALITY AS item(entry, position)
    WHERE (entry ->> 'id')::bigint <> ALL (coalesce(consumed, '{}'))
$$;

-- Fan-in: a child's move to a terminal status counts down its parent in the same statement,
-- whichever path finished the child (an outcome, the reaper, cancel). The last child makes
-- an awaiting parent runnable.
CREATE FUNCTION gen_durable_child_finished() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    parent_queue text;
BEGIN
    UPDATE gen_durable
    SET pending_children = pending_children - 1,
        status = CASE WHEN pending_children = 1 AND status = 'awaiting' AND joining
                      THEN 'available' ELSE status END,
        run_at = CASE WHEN pending_children = 1 AND status = 'awaiting' AND joining
                      THEN now() ELSE run_at END
    WHERE id = NEW.parent_id
      AND pending_children > 0
    RETURNING CASE WHEN status = 'available' THEN queue END INTO parent_queue;
    IF parent_queue IS NOT NULL THEN
        PERFORM pg_notify('gen_durable', parent_queue);
    END IF;
    RETURN NULL;
END;
$$;

-- Whatever path ends an instance (an outcome, the reaper, cancel, expiry), its pending
-- signals go with it.
CREATE FUNCTION gen_durable_finished() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.inbox := '[]';
    DELETE FROM gen_durable_signals WHERE instance_id = NEW.id;
    RETURN NEW;
END;
$$;

CREATE TRIGGER gen_durable_finished
    BEFORE UPDATE OF status ON gen_durable
    FOR EACH ROW
    WHEN (NEW.finished_at IS NOT NULL AND OLD.finished_at IS NULL AND OLD.inbox <> '[]')
    EXECUTE FUNCTION gen_durable_finished();

CREATE TRIGGER gen_durable_child_finished
    AFTER UPDATE OF status ON gen_durable
    FOR EACH ROW
    WHEN (NEW.parent_id IS NOT NULL
          AND NEW.finished_at IS NOT NULL AND OLD.finished_at IS NULL)
    EXECUTE FUNCTION gen_durable_child_finished();

-- Periodic schedules as beats last saw them. A schedule fires its ticks strictly after
-- max(registered_at, last_tick), so a schedule added or a beat restarted never fires early.
CREATE TABLE gen_durable_schedules (
    name           text PRIMARY KEY,
    spec           text NOT NULL,
    registered_at  timestamptz NOT NULL DEFAULT now(),
    last_tick      timestamptz,
    last_fired_at  timestamptz,
    next_tick      timestamptz
);

-- One row per fired tick: the primary key makes "each tick fires once" a database invariant,
-- however many beats run and whatever connection drops mid-tick.
CREATE TABLE gen_durable_ticks (
    schedule     text NOT NULL,
    tick         timestamptz NOT NULL,
    instance_id  bigint,
    fired_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (schedule, tick)
);

-- Cluster-wide queue switches; a queue with no row here is not paused.
CREATE TABLE gen_durable_queues (
    name        text PRIMARY KEY,
    paused      boolean NOT NULL DEFAULT false,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Wake listening workers once per inserting statement, on commit, for rows due now.
-- Due means by the current clock, not by now() (the transaction's start): bulk inserts by COPY
-- schedule rows at a clock reading taken inside the transaction, which is later than now().
CREATE FUNCTION gen_durable_notify_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    due_queue text;
BEGIN
    FOR due_queue IN
        SELECT DISTINCT queue FROM inserted_rows
        WHERE status = 'available' AND run_at <= clock_timestamp()
    LOOP
        PERFORM pg_notify('gen_durable', due_queue);
    END LOOP;
    RETURN NULL;
END;
$$;

CREATE TRIGGER gen_durable_notify_insert
    AFTER INSERT ON gen_durable
    REFERENCING NEW TABLE AS inserted_rows
    FOR EACH STATEMENT EXECUTE FUNCTION gen_durable_notify_insert();
