"""Beat decides due times on the database clock, never on the host's.

To tell the two clocks apart, the test's own database returns ``now()`` a day ahead of the
host: a function ``beat_clock.now()`` comes before ``pg_catalog`` in the database's
search_path, so every unqualified ``now()`` of gendurable's queries calls it. A schedule that
fires, and records ticks a day ahead, can only have read that clock.

The scheduler module imports neither ``time`` nor ``datetime.now``, so patching the host
clock in it would prove nothing; the shifted database clock shows the same fact directly.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import sql

from gendurable import App
from ..acceptance.support import wait_until
from .test_beat_schedule_support import scheduler, tick_job

SHIFT = timedelta(days=1)
NAME = "half-second"


@pytest.fixture
def shifted_url(gendurable_database_factory) -> str:
    """A migrated database of its own whose now() runs a day ahead of the host's clock."""
    url = gendurable_database_factory()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA beat_clock")
        conn.execute(
            "CREATE FUNCTION beat_clock.now() RETURNS timestamptz LANGUAGE sql STABLE "
            "AS $$ SELECT pg_catalog.now() + interval '1 day' $$"
        )
        conn.execute(
            sql.SQL("ALTER DATABASE {} SET search_path = beat_clock, pg_catalog, public").format(
                sql.Identifier(conn.info.dbname)
            )
        )
    return url


@pytest.fixture
def shifted_app(shifted_url) -> Iterator[App]:
    app = App(shifted_url, include=(), beat_schedule={NAME: {"task": tick_job, "schedule": 0.5}})
    yield app
    app.close()


def host_now() -> datetime:
    return datetime.now(UTC)


def test_scheduler_reads_database_clock(shifted_app, shifted_url):
    beat = scheduler(shifted_app, None, NAME)
    with psycopg.connect(shifted_url) as conn:
        assert beat.now(conn) - host_now() > SHIFT - timedelta(minutes=1)

    assert beat.run_once() == []

    with psycopg.connect(shifted_url) as conn:
        row = conn.execute(
            "SELECT registered_at, next_tick FROM gen_durable_schedules WHERE name = %s", (NAME,)
        ).fetchone()
    registered_at, next_tick = row
    assert registered_at - host_now() > SHIFT - timedelta(minutes=1)
    assert next_tick == registered_at + timedelta(seconds=0.5)
    [line] = beat.describe()
    assert line.startswith(f"{NAME} (every 0.5 s, misfire latest): next at ")
    described = datetime.fromisoformat(line.rsplit(" ", 1)[1])
    assert described > registered_at
    assert described - registered_at <= timedelta(seconds=0.5) * 3

    fired = wait_until(beat.run_once, "a tick fires on the database clock")

    assert fired[0].inserted
    assert fired[0].tick > registered_at
    assert fired[0].tick - host_now() > SHIFT - timedelta(minutes=1)
    with psycopg.connect(shifted_url) as conn:
        run_at = conn.execute(
            "SELECT run_at FROM gen_durable WHERE id = %s", (fired[0].instance_id,)
        ).fetchone()[0]
    assert run_at - host_now() > SHIFT - timedelta(minutes=1)
