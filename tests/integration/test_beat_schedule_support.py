"""Helpers shared by the ``test_beat_schedule*`` modules; this module contains no tests.

Schedulers here read a fake clock that the test moves by hand, so a test covers hours or days
of ticks in a fraction of a second and never sleeps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest

from gendurable import App, _registry, durable_job
from gendurable._beat.scheduler import Fired, Scheduler


@durable_job
def tick_job(label: str = "tick") -> str:
    """The job the beat_schedule entries of these tests start."""
    return label


class FakeClock:
    """A clock that moves only when the test advances it; share one among several beats."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError(f"the fake clock needs an aware datetime, got {start!r}")
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> datetime:
        self.now += delta
        return self.now

    def set(self, moment: datetime) -> datetime:
        self.now = moment
        return self.now


def scheduler(app: App, clock: Callable[[], datetime] | None, *names: str) -> Scheduler:
    """Build a Scheduler that fires only the named schedules.

    The registry of jobs is process-wide, so a Scheduler collects the periodic jobs of every
    test module imported so far. Keeping only the schedules under test isolates the test.
    """
    built = Scheduler(app, clock=clock)
    built.schedules = [schedule for schedule in built.schedules if schedule.name in names]
    found = sorted(schedule.name for schedule in built.schedules)
    assert found == sorted(names), f"the app declares schedules {found}, expected {sorted(names)}"
    return built


def inserted_ticks(fired: list[Fired]) -> list[datetime]:
    """Return the ticks that these passes inserted an instance for, in order."""
    return [item.tick for item in fired if item.inserted]


@pytest.fixture
def restore_registry() -> Iterator[None]:
    """Forget the jobs and FSMs a test declares, so their schedules fire in no other test."""
    saved = _registry.registered()
    yield
    with _registry._lock:
        _registry._definitions.clear()
        _registry._definitions.update(saved)


def tick_rows(db: psycopg.Connection[Any], schedule: str) -> list[dict[str, Any]]:
    """Return the fired ticks of one schedule, oldest first."""
    return db.execute(
        "SELECT tick, instance_id FROM gen_durable_ticks WHERE schedule = %s ORDER BY tick",
        (schedule,),
    ).fetchall()


def instance_ids(db: psycopg.Connection[Any], fsm: str) -> list[int]:
    """Return the ids of the instances of one job or FSM, oldest first."""
    rows = db.execute("SELECT id FROM gen_durable WHERE fsm = %s ORDER BY id", (fsm,)).fetchall()
    return [row["id"] for row in rows]


def schedule_row(db: psycopg.Connection[Any], name: str) -> dict[str, Any]:
    found = db.execute("SELECT * FROM gen_durable_schedules WHERE name = %s", (name,)).fetchone()
    assert found is not None, f"schedule {name!r} is not registered"
    return dict(found)
