"""The app and jobs that the acceptance tests run in real ``gendurable worker`` processes.

Workers load it with ``-A tests.acceptance.jobs_app:app``; the database comes from
``GENDURABLE_DATABASE_URL``. Every job records each execution in the ``executions`` table
over a connection of its own, so a test checks what ran, in which process and on which
attempt, instead of measuring time. A job that must stay in the middle of its step waits for
a row in ``releases`` that the test inserts when it is ready.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from typing import Any

import psycopg

from gendurable import App, Queue, durable_job
from gendurable.context import Context

app = App(
    queues={
        "limited": Queue(concurrency=5, global_limit=2),
        "pausable": Queue(concurrency=2),
    }
)

SCHEMA = """
CREATE TABLE executions (
    id          bigserial PRIMARY KEY,
    job_id      bigint NOT NULL,
    attempt     integer NOT NULL,
    pid         integer NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    ended_at    timestamptz,
    note        text
);
CREATE TABLE releases (tag text PRIMARY KEY);
"""

# Connections of jobs are named so that tests which terminate the engine's connections
# ("gendurable ..." names) leave these alone.
APPLICATION_NAME = "acceptance job"

# A blocked step gives up after this long, so a broken test cannot leave a worker busy forever.
BLOCK_LIMIT = 60.0
POLL = 0.05

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


def _start(ctx: Context) -> int:
    row = _connection().execute(
        "INSERT INTO executions (job_id, attempt, pid) VALUES (%s, %s, %s) RETURNING id",
        (ctx.id, ctx.attempt, os.getpid()),
    ).fetchone()
    assert row is not None
    return int(row[0])


def _end(execution_id: int, note: str | None = None) -> None:
    _connection().execute(
        "UPDATE executions SET ended_at = clock_timestamp(), note = %s WHERE id = %s",
        (note, execution_id),
    )


def _released(tag: str) -> bool:
    return _connection().execute("SELECT FROM releases WHERE tag = %s", (tag,)).fetchone() is not None


@durable_job
def record(n: int, ctx: Context) -> int:
    """Record one execution and return ``n``."""
    _end(_start(ctx))
    return n


@durable_job
def sleep_for(seconds: float, ctx: Context) -> float:
    """Record an execution that keeps its slot for ``seconds``."""
    execution = _start(ctx)
    time.sleep(seconds)
    _end(execution)
    return seconds


@durable_job
def block(tag: str, ctx: Context) -> str:
    """Record an execution that stays in its step until the test inserts ``tag`` in releases."""
    execution = _start(ctx)
    deadline = time.monotonic() + BLOCK_LIMIT
    while not _released(tag):
        if time.monotonic() > deadline:
            raise TimeoutError(f"release {tag!r} did not come within {BLOCK_LIMIT} s")
        time.sleep(POLL)
    _end(execution)
    return tag


@durable_job
def block_each_attempt(tag: str, ctx: Context) -> str:
    """Like ``block``, but each attempt waits for its own release, ``tag/attempt``."""
    return block(f"{tag}/{ctx.attempt}", ctx=ctx)


@durable_job
def wait_for_cancel(ctx: Context) -> str:
    """Record an execution that loops until ``ctx.cancelled`` is set, then returns."""
    execution = _start(ctx)
    deadline = time.monotonic() + BLOCK_LIMIT
    while not ctx.wait_cancelled(POLL):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no cancel came within {BLOCK_LIMIT} s")
    _end(execution, "saw ctx.cancelled")
    return "stopped"


@durable_job
async def sleep_async(ctx: Context) -> str:
    """Record an execution that sleeps on the event loop until it is cancelled."""
    url = os.environ["GENDURABLE_DATABASE_URL"]
    async with await psycopg.AsyncConnection.connect(
        url, autocommit=True, application_name=APPLICATION_NAME
    ) as conn:
        cursor = await conn.execute(
            "INSERT INTO executions (job_id, attempt, pid) VALUES (%s, %s, %s) RETURNING id",
            (ctx.id, ctx.attempt, os.getpid()),
        )
        row = await cursor.fetchone()
        assert row is not None
        try:
            await asyncio.sleep(BLOCK_LIMIT)
        except asyncio.CancelledError:
            await conn.execute(
                "UPDATE executions SET ended_at = clock_timestamp(), note = %s WHERE id = %s",
                ("CancelledError", row[0]),
            )
            raise
    return "slept"
