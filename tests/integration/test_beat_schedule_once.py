"""Each tick of a periodic schedule fires exactly once, however many beats run and whichever
of them stops or loses its connection. No tick fires early.

Three Scheduler instances on three apps (each with its own connection pool) stand for three
beat processes. They read one shared fake clock, so the test decides when ticks fall due.
"""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from gendurable import telemetry
from gendurable.schedules import crontab

from ..acceptance.support import wait_until
from .test_beat_schedule_support import (
    FakeClock,
    inserted_ticks,
    instance_ids,
    schedule_row,
    scheduler,
    tick_job,
    tick_rows,
)

START = datetime(2030, 1, 7, 12, 0, tzinfo=UTC)
EVERY = timedelta(minutes=1)
NAME = "every-minute"
ENTRY = {NAME: {"task": tick_job, "schedule": EVERY}}
# Fires every due tick, so that one pass can have several ticks to fire.
CATCH_UP = {NAME: {"task": tick_job, "schedule": EVERY, "misfire": "all"}}


def expected_ticks(first: int, last: int) -> list[datetime]:
    return [START + EVERY * number for number in range(first, last + 1)]


def build_beats(make_app, count=3, entries=ENTRY, clock=None, **settings):
    clock = clock or FakeClock(START)
    beats = [
        scheduler(make_app(beat_schedule=entries, **settings), clock, *entries)
        for _ in range(count)
    ]
    return clock, beats


def backend_pid(beat) -> int:
    """Return the server pid of the only connection in a beat's pool (pool_size=1)."""
    with beat.app.pool.connection() as conn:
        return conn.info.backend_pid


def terminate(db, pid: int) -> None:
    """Terminate a backend and wait until it is gone, as pg_terminate_backend only signals it."""
    db.execute("SELECT pg_terminate_backend(%s)", (pid,))
    query = "SELECT FROM pg_stat_activity WHERE pid = %s"
    wait_until(lambda: db.execute(query, (pid,)).fetchone() is None, f"backend {pid} exits")


def test_three_beats_fire_each_tick_once(db, make_app):
    clock, beats = build_beats(make_app)
    shuffle = random.Random(20300107)
    for beat in beats:
        assert beat.run_once() == []

    fired = []
    while clock.now < START + EVERY * 40:
        # Steps shorter than the interval, so that every tick has passes after it.
        clock.advance(timedelta(seconds=shuffle.choice([7, 20, 30, 45, 60])))
        for beat in shuffle.sample(beats, k=shuffle.randint(1, 3)):
            fired += beat.run_once()

    expected = [tick for tick in expected_ticks(1, 40) if tick <= clock.now]
    assert inserted_ticks(fired) == expected
    assert [item.tick for item in fired if not item.inserted] == []
    rows = tick_rows(db, NAME)
    assert [row["tick"] for row in rows] == expected
    assert [row["instance_id"] for row in rows] == instance_ids(db, tick_job.name)
    assert [item.instance_id for item in fired] == instance_ids(db, tick_job.name)


def test_simultaneous_beats_one_insert(db, make_app, gendurable_database_url, events):
    clock, beats = build_beats(make_app)
    for beat in beats:
        beat.run_once()

    for number in range(1, 4):
        tick = clock.advance(EVERY)
        # Holding this lock stops every beat at its insert into gen_durable_ticks, after each
        # has read that the tick is due: all three then race for the same tick.
        with psycopg.connect(gendurable_database_url) as blocker:
            blocker.execute("LOCK TABLE gen_durable_ticks IN SHARE MODE")
            with ThreadPoolExecutor(max_workers=3) as pool:
                passes = [pool.submit(beat.run_once) for beat in beats]
                try:
                    wait_until(lambda: waiting_for_lock(db) == 3,
                               "three beats wait to insert the tick")
                finally:
                    blocker.rollback()
            results = [item for future in passes for item in future.result()]

        assert sorted(item.inserted for item in results) == [False, False, True]
        assert {item.tick for item in results} == {tick}
        [winner] = [item for item in results if item.inserted]
        assert winner.instance_id == instance_ids(db, tick_job.name)[-1]
        assert [item.instance_id for item in results if not item.inserted] == [None, None]
        assert len(tick_rows(db, NAME)) == number

    fired_events = [(measure, meta) for name, measure, meta in events if name == "beat.fired"]
    assert len(fired_events) == 9
    for measurements, metadata in fired_events:
        assert metadata["schedule"] == NAME
        assert measurements == {"count": 1 if metadata["inserted"] else 0}
    winners = [metadata for _, metadata in fired_events if metadata["inserted"]]
    assert [metadata["tick"] for metadata in winners] == expected_ticks(1, 3)
    assert [metadata["instance_id"] for metadata in winners] == instance_ids(
        db, tick_job.name
    )
    losers = [metadata for _, metadata in fired_events if not metadata["inserted"]]
    assert sorted(metadata["tick"] for metadata in losers) == sorted(expected_ticks(1, 3) * 2)
    assert {metadata["instance_id"] for metadata in losers} == {None}
    assert len(instance_ids(db, tick_job.name)) == 3


def waiting_for_lock(db) -> int:
    row = db.execute(
        "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() "
        "AND application_name = 'gendurable app' AND wait_event_type = 'Lock'"
    ).fetchone()
    return int(row["n"])


def test_beats_carry_on_after_one_stops(db, make_app):
    clock, beats = build_beats(make_app)
    first, *others = beats
    for beat in beats:
        beat.run_once()

    fired = []
    for _ in range(10):
        clock.advance(EVERY)
        for beat in beats:
            fired += beat.run_once()
    assert {item.tick for item in fired} == set(expected_ticks(1, 10))

    # The beat that fired every tick so far is gone: the others take over, in either order.
    for number in range(11, 21):
        clock.advance(EVERY)
        for beat in others if number % 2 else reversed(others):
            fired += beat.run_once()

    assert inserted_ticks(fired) == expected_ticks(1, 20)
    assert [row["tick"] for row in tick_rows(db, NAME)] == expected_ticks(1, 20)
    assert len(instance_ids(db, tick_job.name)) == 20


def test_pass_with_one_pooled_connection(db, make_app):
    # A pass must not hold its connection while asking the same pool for another one to
    # send wakeups: with pool_size=1 that waits for the pool's timeout and fails the pass.
    clock, [beat] = build_beats(make_app, count=1, pool_size=1)
    beat.run_once()
    clock.advance(EVERY)

    fired = beat.run_once()

    assert inserted_ticks(fired) == expected_ticks(1, 1)


def test_connection_terminated_between_passes(db, make_app):
    clock, beats = build_beats(make_app, pool_size=1)
    for beat in beats:
        beat.run_once()

    fired = []
    failed_passes = 0
    for number in range(1, 13):
        clock.advance(EVERY)
        order = beats[number % 3:] + beats[: number % 3]
        if number % 3 == 0:
            terminate(db, backend_pid(order[0]))
        for beat in order:
            try:
                fired += beat.run_once()
            except psycopg.OperationalError:
                # The pool may hand out the dead connection once, and Beat's loop then retries.
                failed_passes += 1

    assert failed_passes <= 4
    assert inserted_ticks(fired) == expected_ticks(1, 12)
    assert [row["tick"] for row in tick_rows(db, NAME)] == expected_ticks(1, 12)
    assert len(instance_ids(db, tick_job.name)) == 12
    for beat in beats:
        assert beat.run_once() == []


def test_connection_lost_mid_pass(db, make_app):
    clock, [doomed, survivor] = build_beats(make_app, count=2, entries=CATCH_UP, pool_size=1)
    doomed.run_once()
    survivor.run_once()
    clock.advance(EVERY * 3)
    pid = backend_pid(doomed)

    def cut_after_first_fire(event, measurements, metadata):
        if event == "beat.fired" and metadata["tick"] == START + EVERY:
            db.execute("SELECT pg_terminate_backend(%s)", (pid,))

    telemetry.attach("tests.cut", ["beat.fired"], cut_after_first_fire)
    try:
        with pytest.raises(psycopg.OperationalError):
            doomed.run_once()
    finally:
        telemetry.detach("tests.cut")

    # The first tick committed with its instance before the connection went; the rest are due.
    assert [row["tick"] for row in tick_rows(db, NAME)] == expected_ticks(1, 1)
    assert schedule_row(db, NAME)["last_tick"] == START + EVERY
    fired = survivor.run_once()
    assert inserted_ticks(fired) == expected_ticks(2, 3)
    assert doomed.run_once() == []
    assert [row["tick"] for row in tick_rows(db, NAME)] == expected_ticks(1, 3)
    assert len(instance_ids(db, tick_job.name)) == 3


# No early fire.


def test_registration_fires_nothing(db, make_app):
    # Registered exactly on a cron tick and on the anchor of an interval: neither fires.
    entries = {
        "hourly": {"task": tick_job, "schedule": crontab(minute=0)},
        NAME: {"task": tick_job, "schedule": EVERY},
    }
    clock = FakeClock(START)
    beat = scheduler(make_app(beat_schedule=entries), clock, *entries)

    for _ in range(3):
        assert beat.run_once() == []

    assert tick_rows(db, "hourly") == []
    assert tick_rows(db, NAME) == []
    assert schedule_row(db, NAME)["registered_at"] == START
    assert schedule_row(db, NAME)["last_tick"] is None
    assert schedule_row(db, "hourly")["next_tick"] == START + timedelta(hours=1)
    assert schedule_row(db, NAME)["next_tick"] == START + EVERY


def test_restart_after_tick_fires_nothing(db, make_app):
    clock, [beat] = build_beats(make_app, count=1)
    beat.run_once()
    clock.advance(EVERY)
    assert inserted_ticks(beat.run_once()) == expected_ticks(1, 1)

    _, [restarted] = build_beats(make_app, count=1, clock=clock)
    assert restarted.run_once() == []
    clock.advance(EVERY - timedelta(seconds=1))
    assert restarted.run_once() == []

    assert [row["tick"] for row in tick_rows(db, NAME)] == expected_ticks(1, 1)
    assert len(instance_ids(db, tick_job.name)) == 1
    assert schedule_row(db, NAME)["registered_at"] == START


def test_repeated_passes_add_nothing(db, make_app):
    clock, beats = build_beats(make_app, count=2)
    for beat in beats:
        beat.run_once()
    clock.advance(EVERY)
    fired = beats[0].run_once()

    for _ in range(5):
        for beat in beats:
            assert beat.run_once() == []

    assert inserted_ticks(fired) == expected_ticks(1, 1)
    assert len(tick_rows(db, NAME)) == 1
    assert len(instance_ids(db, tick_job.name)) == 1



def test_live_instance_keeps_tick_key(db, make_app):
    # A tick whose job still has a live instance with the same correlation key is used up
    # without a second instance, so a slow periodic job never runs twice at once.
    entries = {NAME: {"task": tick_job, "schedule": EVERY, "options": {"correlation_key": "only"}}}
    clock, [beat] = build_beats(make_app, count=1, entries=entries)
    beat.run_once()

    clock.advance(EVERY)
    [first] = beat.run_once()
    clock.advance(EVERY)
    [second] = beat.run_once()

    assert first.inserted
    assert first.instance_id == instance_ids(db, tick_job.name)[0]
    assert second.inserted
    assert second.instance_id is None
    assert [row["instance_id"] for row in tick_rows(db, NAME)] == [first.instance_id, None]

    assert beat.app.drain() == {"done": 1}
    clock.advance(EVERY)
    [third] = beat.run_once()
    assert third.instance_id is not None
    assert instance_ids(db, tick_job.name) == [first.instance_id, third.instance_id]
    assert tick_rows(db, NAME)[-1]["instance_id"] == third.instance_id
