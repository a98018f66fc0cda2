"""The app and state machines that the FSM acceptance tests run in real worker processes.

Workers load it with ``-A tests.acceptance.fsm_app:app``; the database comes from
``GENDURABLE_DATABASE_URL``. Steps record each run in the ``fsm_runs`` table over a
connection of their own, so a test checks what ran, where and on which attempt from the
database instead of measuring time. A step that must stay in its middle waits for a row in
``fsm_releases`` that the test inserts when it is ready.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import psycopg
from pydantic import BaseModel

from gendurable import FSM, App, Await, Children, Context, Done, Next, Stop, durable_job, step

app = App()

SCHEMA = """
CREATE TABLE fsm_runs (
    id           bigserial PRIMARY KEY,
    instance_id  bigint NOT NULL,
    step         text NOT NULL,
    attempt      integer NOT NULL,
    pid          integer NOT NULL,
    key          text,
    state        jsonb,
    started_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    ended_at     timestamptz
);
CREATE TABLE fsm_releases (tag text PRIMARY KEY);
"""

# Connections of steps are named so that tests which terminate the engine's connections
# ("gendurable ..." names) leave these alone.
APPLICATION_NAME = "acceptance fsm step"
# A blocked step gives up after this long, so a broken test cannot keep a worker busy forever.
BLOCK_LIMIT = 60.0
POLL = 0.05
# How long a step of Serial keeps its slot, so that two runs of one key would overlap.
SERIAL_STEP_SECONDS = 0.05

_local = threading.local()


def _connection() -> psycopg.Connection[Any]:
    """Return this thread's connection to the test database, opening it when needed."""
    conn: psycopg.Connection[Any] | None = getattr(_local, "conn", None)
    if conn is None or conn.closed or conn.broken:
        conn = psycopg.connect(
            os.environ["GENDURABLE_DATABASE_URL"], autocommit=True,
            application_name=APPLICATION_NAME,
        )
        _local.conn = conn
    return conn


def record_start(ctx: Context, key: str | None = None, state: BaseModel | None = None) -> int:
    """Record that a step began; return the run's id for ``record_end``."""
    row = _connection().execute(
        "INSERT INTO fsm_runs (instance_id, step, attempt, pid, key, state) "
        "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
        (ctx.id, ctx.step, ctx.attempt, os.getpid(), key,
         None if state is None else state.model_dump_json()),
    ).fetchone()
    assert row is not None
    return int(row[0])


def record_end(run_id: int) -> None:
    _connection().execute(
        "UPDATE fsm_runs SET ended_at = clock_timestamp() WHERE id = %s", (run_id,)
    )


def wait_for_release(tag: str) -> None:
    deadline = time.monotonic() + BLOCK_LIMIT
    query = "SELECT FROM fsm_releases WHERE tag = %s"
    while _connection().execute(query, (tag,)).fetchone() is None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"release {tag!r} did not come within {BLOCK_LIMIT} s")
        time.sleep(POLL)


class Serial(FSM):
    """Two steps that each hold their slot a moment; started with a concurrency key."""

    queue = "fsm_serial"

    class State(BaseModel):
        key: str

    @step(initial=True)
    def first(self, state: State, ctx: Context) -> Next:
        run = record_start(ctx, state.key)
        time.sleep(SERIAL_STEP_SECONDS)
        record_end(run)
        return Next("second")

    @step
    def second(self, state: State, ctx: Context) -> Done:
        run = record_start(ctx, state.key)
        time.sleep(SERIAL_STEP_SECONDS)
        record_end(run)
        return Done(state.key)


@durable_job(queue="fsm_fanout_children")
def square(n: int, ctx: Context) -> int:
    record_end(record_start(ctx))
    return n * n


class FanOut(FSM):
    """Starts ``size`` square jobs and joins them once."""

    queue = "fsm_fanout"

    class State(BaseModel):
        size: int

    @step(initial=True)
    def spread(self, state: State, ctx: Context) -> Children:
        return Children([square.new(n) for n in range(state.size)], "join")

    @step
    def join(self, state: State, ctx: Context) -> Done:
        record_end(record_start(ctx))
        statuses = sorted({child.status.value for child in ctx.children})
        return Done({
            "count": len(ctx.children),
            "statuses": statuses,
            "results": sorted(child.result for child in ctx.children),
        })


class ThreeSteps(FSM):
    """Three steps; the second waits for the release ``<instance id>`` before it returns."""

    queue = "fsm_crash"

    class State(BaseModel):
        order: int
        charge: str | None = None
        shipped: bool = False

    @step(initial=True)
    def charge_card(self, state: State, ctx: Context) -> Next:
        record_end(record_start(ctx, state=state))
        return Next("ship", state.model_copy(update={"charge": f"ch-{state.order}"}))

    @step
    def ship(self, state: State, ctx: Context) -> Next:
        run = record_start(ctx, state=state)
        wait_for_release(str(ctx.id))
        record_end(run)
        return Next("notify", state.model_copy(update={"shipped": True}))

    @step
    def notify(self, state: State, ctx: Context) -> Done:
        record_end(record_start(ctx, state=state))
        return Done(state.model_dump())


class Parcel(FSM):
    """Waits for "shipped" or "lost" and ends with the payload it got."""

    queue = "fsm_parcels"

    class State(BaseModel):
        parcel: int

    @step(initial=True)
    def wait(self, state: State, ctx: Context) -> Await:
        return Await({"shipped", "lost"}, "after")

    @step
    def after(self, state: State, ctx: Context) -> Done | Stop:
        [signal] = ctx.awaited
        if signal.name == "lost":
            return Stop("the parcel was lost")
        return Done(signal.payload)
