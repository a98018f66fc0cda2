"""Misfire policies: what a beat fires for the ticks it missed while every beat was down.

The schedule here ticks every ten minutes. An outage of twelve ticks plus two minutes leaves
even the latest missed tick later than the default 60 s grace, so all twelve count as late.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from .test_beat_schedule_support import (
    FakeClock,
    inserted_ticks,
    instance_ids,
    schedule_row,
    scheduler,
    tick_job,
    tick_rows,
)

START = datetime(2030, 3, 4, 8, 0, tzinfo=UTC)
EVERY = timedelta(minutes=10)
NAME = "every-ten-minutes"
OUTAGE = EVERY * 12 + timedelta(minutes=2)


def tick(number: int) -> datetime:
    return START + EVERY * number


def start_beat(make_app, clock, **entry_options):
    entries = {NAME: {"task": tick_job, "schedule": EVERY, **entry_options}}
    beat = scheduler(make_app(beat_schedule=entries), clock, NAME)
    return beat, entries


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        pytest.param({}, [12], id="latest-by-default"),
        pytest.param({"misfire": "latest"}, [12], id="latest"),
        pytest.param({"misfire": "skip"}, [], id="skip"),
        pytest.param({"misfire": "all"}, list(range(1, 13)), id="all"),
        pytest.param({"misfire": "all", "misfire_limit": 5}, [8, 9, 10, 11, 12], id="all-limit-5"),
    ],
)
def test_outage_of_twelve_ticks(db, make_app, options, expected):
    clock = FakeClock(START)
    beat, entries = start_beat(make_app, clock, **options)
    assert beat.run_once() == []

    clock.advance(OUTAGE)
    fired = beat.run_once()

    assert inserted_ticks(fired) == [tick(number) for number in expected]
    assert [row["tick"] for row in tick_rows(db, NAME)] == [tick(n) for n in expected]
    assert len(instance_ids(db, tick_job.name)) == len(expected)
    assert schedule_row(db, NAME)["last_tick"] == tick(12)
    assert schedule_row(db, NAME)["next_tick"] == tick(13)

    # A restarted beat at the same moment finds nothing left to fire.
    restarted = scheduler(make_app(beat_schedule=entries), clock, NAME)
    assert restarted.run_once() == []
    assert len(tick_rows(db, NAME)) == len(expected)

    # The next regular tick fires as usual, once.
    clock.set(tick(13))
    assert inserted_ticks(restarted.run_once()) == [tick(13)]
    assert beat.run_once() == []
    assert len(instance_ids(db, tick_job.name)) == len(expected) + 1


def test_skip_logs_skipped_ticks(db, make_app, caplog):
    clock = FakeClock(START)
    beat, _ = start_beat(make_app, clock, misfire="skip")
    beat.run_once()
    clock.advance(OUTAGE)

    with caplog.at_level(logging.WARNING, logger="gendurable.beat"):
        assert beat.run_once() == []

    [record] = [r for r in caplog.records if r.name == "gendurable.beat"]
    assert record.levelno == logging.WARNING
    assert NAME in record.getMessage()
    assert tick(12).isoformat() in record.getMessage()


@pytest.mark.parametrize(
    ("misfire", "expected"),
    [("latest", [12]), ("skip", [12]), ("all", list(range(1, 13)))],
)
def test_outage_ending_on_tick(db, make_app, misfire, expected):
    # Eleven late ticks and one on time: latest coalesces all into the one on time.
    clock = FakeClock(START)
    beat, _ = start_beat(make_app, clock, misfire=misfire)
    beat.run_once()
    clock.set(tick(12))

    assert inserted_ticks(beat.run_once()) == [tick(number) for number in expected]


def test_latest_after_long_outage_fires_once(db, make_app):
    # A week without beats, on a one-second schedule: one instance, not a minute's worth.
    entries = {"every-second": {"task": tick_job, "schedule": 1}}
    clock = FakeClock(START)
    beat = scheduler(make_app(beat_schedule=entries), clock, "every-second")
    beat.run_once()
    clock.advance(timedelta(days=7, seconds=0.5))

    assert inserted_ticks(beat.run_once()) == [START + timedelta(days=7)]


def test_skip_fires_ticks_within_grace(db, make_app):
    # Ticks at most misfire_grace late are on time: skip drops only the older ones.
    clock = FakeClock(START)
    beat, _ = start_beat(make_app, clock, misfire="skip", misfire_grace=15 * 60)
    beat.run_once()
    clock.set(tick(12) + timedelta(minutes=2))

    fired = beat.run_once()

    assert inserted_ticks(fired) == [tick(11), tick(12)]
    assert schedule_row(db, NAME)["last_tick"] == tick(12)


def test_skip_fires_tick_on_time(db, make_app):
    clock = FakeClock(START)
    beat, _ = start_beat(make_app, clock, misfire="skip")
    beat.run_once()
    clock.set(tick(12))

    assert inserted_ticks(beat.run_once()) == [tick(12)]
    assert [row["tick"] for row in tick_rows(db, NAME)] == [tick(12)]


def test_latest_fires_ticks_within_grace(db, make_app):
    # Ticks within the grace are not missed: a short outage loses none of them.
    clock = FakeClock(START)
    beat, _ = start_beat(make_app, clock, misfire_grace=3600)
    beat.run_once()
    clock.set(tick(3))

    assert inserted_ticks(beat.run_once()) == [tick(1), tick(2), tick(3)]


def test_latest_keeps_ticks_of_late_passes(db, make_app):
    # Each pass starts beat_interval after the previous one ended, so passes drift behind a
    # one-second interval and often find two ticks due. Both are on time and both fire.
    entries = {"every-second": {"task": tick_job, "schedule": 1}}
    clock = FakeClock(START)
    beat = scheduler(make_app(beat_schedule=entries), clock, "every-second")
    beat.run_once()

    fired = []
    for _ in range(20):
        clock.advance(timedelta(seconds=1.5))
        fired += beat.run_once()

    assert inserted_ticks(fired) == [START + timedelta(seconds=n) for n in range(1, 31)]
