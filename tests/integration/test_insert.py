"""Inserting jobs: .delay(), .apply_async() options, the caller's transaction, and bulk inserts."""

from __future__ import annotations

from datetime import datetime, timedelta

import psycopg
import pytest

from gendurable import durable_job
from gendurable.errors import InstanceConflict, InvalidOption

from .helpers import db_now, get_row, row_count


@durable_job
def echo(n: int, *, label: str = "plain") -> list:
    return [n, label]


@durable_job(queue="insert_queue")
def other_queue(n: int) -> int:
    return n


@durable_job(correlation_key=lambda n: f"n-{n}")
def keyed(n: int) -> int:
    return n


@durable_job(
    correlation_key=lambda n: f"n-{n}",
    correlation_scope=["available", "running", "awaiting", "done"],
)
def keyed_while_kept(n: int) -> int:
    return n


def test_delay_inserts_available_row(gendurable_app, db):
    handle = echo.delay(1, label="x")

    row = get_row(db, handle.id)
    assert row["status"] == "available"
    assert row["fsm"] == echo.name
    assert row["step"] == "perform"
    assert row["queue"] == "default"
    assert row["state"] == {"args": {"n": 1, "label": "x"}}


def test_apply_async_passes_args_kwargs(gendurable_app):
    handle = echo.apply_async(args=(3,), kwargs={"label": "y"})

    gendurable_app.drain()

    assert handle.result(timeout=0) == [3, "y"]


def test_apply_async_options_reach_row(gendurable_app, db):
    handle = echo.apply_async(
        args=(1,), queue="insert_queue", priority=7, max_attempts=3, timeout=9
    )

    row = get_row(db, handle.id)
    assert row["queue"] == "insert_queue"
    assert row["priority"] == 7
    assert row["max_attempts"] == 3
    assert row["timeout"] == 9.0
    assert row["weight"] == 1


def test_countdown_schedules_on_database_clock(gendurable_app, db):
    handle = echo.apply_async(args=(1,), countdown=30)

    row = get_row(db, handle.id)
    assert row["run_at"] - row["inserted_at"] == timedelta(seconds=30)
    assert row["run_at"] > db_now(db)


def test_countdown_accepts_timedelta(gendurable_app, db):
    handle = echo.apply_async(args=(1,), countdown=timedelta(minutes=2))

    row = get_row(db, handle.id)
    assert row["run_at"] - row["inserted_at"] == timedelta(minutes=2)


def test_scheduled_row_waits_for_with_scheduled(gendurable_app):
    handle = echo.apply_async(args=(1,), countdown=3600)

    assert gendurable_app.drain() == {}
    assert handle.status() == "available"
    assert gendurable_app.drain(with_scheduled=True) == {"done": 1}
    assert handle.result(timeout=0) == [1, "plain"]


def test_eta_sets_run_at(gendurable_app, db):
    eta = db_now(db) + timedelta(hours=1)

    handle = echo.apply_async(args=(1,), eta=eta)

    assert get_row(db, handle.id)["run_at"] == eta
    assert gendurable_app.drain() == {}
    assert gendurable_app.drain(with_scheduled=True) == {"done": 1}


def test_naive_eta_rejected(gendurable_app, db):
    with pytest.raises(InvalidOption, match="naive datetime"):
        echo.apply_async(args=(1,), eta=datetime(2030, 1, 1, 12, 0))
    assert row_count(db) == 0


def test_countdown_with_eta_rejected(gendurable_app, db):
    eta = db_now(db) + timedelta(hours=1)

    with pytest.raises(InvalidOption, match="countdown or eta, not both"):
        echo.apply_async(args=(1,), countdown=10, eta=eta)
    assert row_count(db) == 0


def test_connection_rollback_leaves_no_row(gendurable_app, gendurable_database_url, db):
    with psycopg.connect(gendurable_database_url) as conn:
        echo.apply_async(args=(1,), connection=conn)
        assert row_count(db) == 0
        conn.rollback()

    assert row_count(db) == 0
    assert gendurable_app.drain() == {}


def test_connection_commit_inserts_row(gendurable_app, gendurable_database_url, db):
    with psycopg.connect(gendurable_database_url) as conn:
        conn.execute("CREATE TEMPORARY TABLE business (n int)")
        conn.execute("INSERT INTO business VALUES (1)")
        handle = echo.apply_async(args=(5,), connection=conn)
        conn.commit()

    assert row_count(db) == 1
    assert gendurable_app.drain() == {"done": 1}
    assert handle.result(timeout=0) == [5, "plain"]


def test_insert_all_copy_returns_handles_in_order(gendurable_app, db):
    handles = gendurable_app.insert_all([echo.new(n) for n in range(5)])

    assert [handle.inserted for handle in handles] == [True] * 5
    stored = {
        row["id"]: row["n"]
        for row in db.execute("SELECT id, (state->'args'->>'n')::int AS n FROM gen_durable")
    }
    assert [stored[handle.id] for handle in handles] == [0, 1, 2, 3, 4]
    assert gendurable_app.drain() == {"done": 5}
    assert [handle.result(timeout=0) for handle in handles] == [[n, "plain"] for n in range(5)]


def test_insert_all_copy_keeps_options(gendurable_app, db):
    [handle] = gendurable_app.insert_all(
        [echo.new(1, label="z", countdown=60, priority=2, queue="insert_queue", max_attempts=4)]
    )

    row = get_row(db, handle.id)
    assert row["state"] == {"args": {"n": 1, "label": "z"}}
    assert row["priority"] == 2
    assert row["queue"] == "insert_queue"
    assert row["max_attempts"] == 4
    assert row["run_at"] - row["inserted_at"] >= timedelta(seconds=60)


def test_insert_all_empty_list(gendurable_app):
    assert gendurable_app.insert_all([]) == []


def test_insert_all_rejects_non_inserts(gendurable_app, db):
    with pytest.raises(InvalidOption, match="job.new"):
        gendurable_app.insert_all([echo.new(1), 5])  # type: ignore[list-item]
    assert row_count(db) == 0


def test_insert_all_connection_rollback(gendurable_app, gendurable_database_url, db):
    with psycopg.connect(gendurable_database_url) as conn:
        gendurable_app.insert_all([echo.new(1), keyed.new(2)], connection=conn)
        conn.rollback()

    assert row_count(db) == 0


def test_insert_all_after_write_rollback(gendurable_app, gendurable_database_url, db):
    with psycopg.connect(gendurable_database_url) as conn:
        conn.execute("SELECT 1")
        gendurable_app.insert_all([echo.new(1), keyed.new(2)], connection=conn)
        conn.rollback()

    assert row_count(db) == 0


def test_insert_all_connection_commit(gendurable_app, gendurable_database_url, db):
    with psycopg.connect(gendurable_database_url) as conn:
        conn.execute("SELECT 1")
        handles = gendurable_app.insert_all([echo.new(1), keyed.new(2)], connection=conn)
        assert row_count(db) == 0
        conn.commit()

    assert row_count(db) == 2
    assert gendurable_app.drain() == {"done": 2}
    assert handles[1].result(timeout=0) == 2


def test_delay_dedups_correlation_key(gendurable_app, db):
    first = keyed.delay(1)
    second = keyed.delay(1)

    assert first.inserted
    assert not second.inserted
    assert second.id == first.id
    assert row_count(db) == 1


def test_apply_async_key_overrides_job(gendurable_app, db):
    first = keyed.apply_async(args=(1,), correlation_key="custom")
    second = keyed.apply_async(args=(2,), correlation_key="custom")

    assert get_row(db, first.id)["correlation_key"] == "custom"
    assert second.id == first.id


def test_insert_all_dedups_correlation_keys(gendurable_app, db):
    existing = keyed.delay(1)

    handles = gendurable_app.insert_all([keyed.new(1), keyed.new(2), keyed.new(2), echo.new(3)])

    assert handles[0].id == existing.id
    assert not handles[0].inserted
    assert handles[1].inserted
    assert handles[2].id == handles[1].id
    assert not handles[2].inserted
    assert handles[3].inserted
    assert row_count(db) == 3


def test_key_reused_after_done(gendurable_app, db):
    first = keyed.delay(1)
    gendurable_app.drain()

    second = keyed.delay(1)

    assert second.inserted
    assert second.id != first.id
    assert row_count(db) == 2


def test_key_in_done_scope_dedups(gendurable_app, db):
    first = keyed_while_kept.delay(1)
    gendurable_app.drain()

    second = keyed_while_kept.delay(1)
    [third] = gendurable_app.insert_all([keyed_while_kept.new(1)])

    assert not second.inserted
    assert second.id == first.id
    assert third.id == first.id
    assert row_count(db) == 1


def test_retry_with_live_key_rejected(gendurable_app, db):
    first = keyed.delay(1)
    gendurable_app.drain()
    second = keyed.delay(1)

    with pytest.raises(InstanceConflict, match=f"instance {first.id} cannot be retried"):
        gendurable_app.retry(first.id)
    assert first.status() == "done"
    assert second.status() == "available"


def test_delay_notifies_listeners(gendurable_app, db):
    db.execute("LISTEN gen_durable")

    echo.delay(1)

    received = list(db.notifies(timeout=5, stop_after=1))
    assert [notify.payload for notify in received] == ["default"]


def test_insert_all_notifies_listeners(gendurable_app, db):
    db.execute("LISTEN gen_durable")

    gendurable_app.insert_all([echo.new(1), echo.new(2)])

    received = list(db.notifies(timeout=5, stop_after=1))
    assert [notify.payload for notify in received] == ["default"]
