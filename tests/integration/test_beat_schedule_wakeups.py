"""The wakeups a scheduler pass sends: for fired ticks, and for scheduled rows that became due.

A pass reads due times on the fake clock, which starts at the database's time here so that the
rows' ``run_at`` values fall between passes. ``app.wake`` is replaced by a recorder.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from .helpers import db_now
from .test_beat_schedule_support import FakeClock, scheduler, tick_job


@pytest.fixture
def woken(make_app, monkeypatch):
    """Build an app whose wakeups are recorded, one sorted list of queues per call."""
    calls: list[list[str]] = []

    def build(**options):
        app = make_app(queues={"reports": 1}, **options)
        monkeypatch.setattr(app, "wake", lambda queues: calls.append(sorted(queues)))
        return app

    return build, calls


def test_first_pass_wakes_overdue_rows(db, woken):
    build, calls = woken
    app = build()
    overdue = tick_job.apply_async(queue="reports", countdown=3600)
    db.execute("UPDATE gen_durable SET run_at = now() - interval '1 minute' WHERE id = %s",
               (overdue.id,))
    clock = FakeClock(db_now(db))
    beat = scheduler(app, clock)

    beat.run_once()
    clock.advance(timedelta(seconds=1))
    beat.run_once()

    # Its insert sent no wakeup because the row was not due then, and no beat ran since.
    assert calls == [["reports"]]


def test_pass_wakes_rows_due_since_last(db, woken):
    build, calls = woken
    app = build()
    clock = FakeClock(db_now(db))
    beat = scheduler(app, clock)
    beat.run_once()
    assert calls == []

    tick_job.apply_async(countdown=30)
    clock.advance(timedelta(seconds=10))
    beat.run_once()
    assert calls == []
    clock.advance(timedelta(seconds=25))
    beat.run_once()
    assert calls == [["default"]]
    clock.advance(timedelta(seconds=10))
    beat.run_once()
    assert calls == [["default"]]


def test_fired_tick_wakes_its_queue(db, woken):
    build, calls = woken
    entries = {
        "reports-minute": {"task": tick_job, "schedule": 60, "options": {"queue": "reports"}},
    }
    app = build(beat_schedule=entries)
    clock = FakeClock(db_now(db))
    beat = scheduler(app, clock, "reports-minute")
    beat.run_once()

    clock.advance(timedelta(minutes=1))
    [fired] = beat.run_once()

    assert fired.inserted
    assert calls == [["reports"]]
