"""The beat passes run once by hand: expiry, the reaper of expired leases, and GC."""

from __future__ import annotations

from datetime import timedelta

import pytest

from gendurable import Status, durable_job
from gendurable._beat.gc import sweep_once
from gendurable._beat.reaper import reap_once
from gendurable._store import OutcomeRecord

from .helpers import db_now, get_row, row_count

ran: list[int] = []


@pytest.fixture(autouse=True)
def _forget_runs():
    ran.clear()


@durable_job(max_attempts=3)
def work(n: int) -> int:
    ran.append(n)
    return n


def expire_lease(db, instance_id, *, attempt=1, cancel_requested=False):
    """Make a row look picked by a worker that died: running, with a lease in the past."""
    db.execute(
        """
        UPDATE gen_durable
        SET status = 'running', lease_owner = 'dead', attempt = %s, cancel_requested = %s,
            lease_expires_at = now() - interval '1 minute', attempted_at = now() - interval '2 minutes'
        WHERE id = %s
        """,
        (attempt, cancel_requested, instance_id),
    )


def test_expired_row_cancelled_unrun(gendurable_app, db):
    handle = work.apply_async(args=(1,), expires=db_now(db) - timedelta(seconds=1))

    assert gendurable_app.drain() == {}
    reap_once(gendurable_app._store)

    row = get_row(db, handle.id)
    assert row["status"] == "cancelled"
    assert row["finished_at"] is not None
    assert "expired" in row["errors"][-1]["error"]
    assert gendurable_app.drain(with_scheduled=True) == {}
    assert ran == []


def test_expires_accepts_seconds(gendurable_app, db):
    handle = work.apply_async(args=(1,), expires=0)

    reap_once(gendurable_app._store)

    assert handle.status() == "cancelled"


def test_unexpired_row_runs(gendurable_app):
    handle = work.apply_async(args=(2,), expires=timedelta(hours=1))

    reap_once(gendurable_app._store)

    assert gendurable_app.drain() == {"done": 1}
    assert handle.result(timeout=0) == 2


def test_reaper_rescues_expired_lease(gendurable_app, db, events):
    handle = work.delay(3)
    expire_lease(db, handle.id)

    assert reap_once(gendurable_app._store) == 1

    row = get_row(db, handle.id)
    assert row["status"] == "available"
    assert row["lease_owner"] is None
    assert row["lease_expires_at"] is None
    assert row["errors"][-1]["attempt"] == 1
    assert "lease held by dead expired" in row["errors"][-1]["error"]
    rescued = [metadata for name, _, metadata in events if name == "reaper.rescued"]
    assert rescued == [{"ids": [handle.id], "count": 1}]


def test_rescued_row_runs_again(gendurable_app, db):
    handle = work.delay(3)
    expire_lease(db, handle.id)
    reap_once(gendurable_app._store)

    assert gendurable_app.drain() == {"done": 1}
    assert handle.result(timeout=0) == 3
    assert get_row(db, handle.id)["attempt"] == 2


def test_reaper_fails_row_out_of_attempts(gendurable_app, db):
    handle = work.delay(4)
    expire_lease(db, handle.id, attempt=3)

    reap_once(gendurable_app._store)

    row = get_row(db, handle.id)
    assert row["status"] == "failed"
    assert row["finished_at"] is not None
    assert "lease held by dead expired" in row["errors"][-1]["error"]


def test_reaper_cancels_requested_row(gendurable_app, db):
    handle = work.delay(5)
    expire_lease(db, handle.id, cancel_requested=True)

    reap_once(gendurable_app._store)

    assert handle.status() == "cancelled"
    assert get_row(db, handle.id)["finished_at"] is not None


def test_reaper_leaves_live_leases(gendurable_app, db, events):
    handle = work.delay(6)
    db.execute(
        """
        UPDATE gen_durable SET status = 'running', lease_owner = 'alive', attempt = 1,
            lease_expires_at = now() + interval '1 minute'
        WHERE id = %s
        """,
        (handle.id,),
    )

    assert reap_once(gendurable_app._store) == 0
    assert get_row(db, handle.id)["lease_owner"] == "alive"
    assert [name for name, _, _ in events if name == "reaper.rescued"] == []


def test_reaper_handles_many_rows(gendurable_app, db):
    handles = gendurable_app.insert_all([work.new(n) for n in range(30)])
    db.execute(
        """
        UPDATE gen_durable SET status = 'running', lease_owner = 'dead', attempt = 1,
            lease_expires_at = now() - interval '1 minute'
        """
    )

    assert reap_once(gendurable_app._store) == 30
    assert {handle.status() for handle in handles} == {Status.AVAILABLE}


def test_outcome_needs_lease_holder(gendurable_app, db):
    handle = work.delay(7)
    store = gendurable_app._store
    with gendurable_app.pool.connection() as conn:
        [picked] = store.pick(conn, "worker-a", {"default": 1}, {}, 60)

        outcome = OutcomeRecord(picked.id, Status.DONE, picked.attempted_at, result=1)
        stolen = store.apply_outcomes(conn, "worker-b", [outcome])

        assert stolen == {}
        row = get_row(db, handle.id)
        assert row["status"] == "running"
        assert row["lease_owner"] == "worker-a"
        assert row["result"] is None

        applied = store.apply_outcomes(conn, "worker-a", [outcome])

    assert applied == {handle.id: Status.DONE}
    assert handle.result(timeout=0) == 1


def test_stale_worker_outcome_discarded(gendurable_app, db):
    handle = work.delay(8)
    store = gendurable_app._store
    with gendurable_app.pool.connection() as conn:
        [old] = store.pick(conn, "worker-old", {"default": 1}, {}, 60)
        db.execute(
            "UPDATE gen_durable SET lease_expires_at = now() - interval '1 second' WHERE id = %s",
            (handle.id,),
        )
        reap_once(store)
        [new] = store.pick(conn, "worker-new", {"default": 1}, {}, 60)

        late = store.apply_outcomes(
            conn, "worker-old", [OutcomeRecord(handle.id, Status.DONE, old.attempted_at, result="old")]
        )
        current = store.apply_outcomes(
            conn, "worker-new", [OutcomeRecord(handle.id, Status.DONE, new.attempted_at, result="new")]
        )

    assert late == {}
    assert current == {handle.id: Status.DONE}
    assert handle.result(timeout=0) == "new"


def insert_finished(db, count, *, age, status="done", parent_id=None):
    """Insert terminal rows finished ``age`` ago and return their ids."""
    rows = db.execute(
        """
        INSERT INTO gen_durable (fsm, step, status, finished_at, parent_id)
        SELECT 'gc.job', 'perform', %s, now() - %s, %s FROM generate_series(1, %s)
        RETURNING id
        """,
        (status, age, parent_id, count),
    ).fetchall()
    return [row["id"] for row in rows]


def remaining_ids(db):
    return {row["id"] for row in db.execute("SELECT id FROM gen_durable")}


def test_gc_deletes_old_terminal_rows(gendurable_app, db, events):
    insert_finished(db, 10, age=timedelta(days=2), status="done")
    insert_finished(db, 10, age=timedelta(days=2), status="failed")
    insert_finished(db, 5, age=timedelta(days=2), status="cancelled")

    deleted = sweep_once(gendurable_app._store, 86400, 1000)

    assert deleted == 25
    assert row_count(db) == 0
    swept = [metadata for name, _, metadata in events if name == "gc.swept"]
    assert swept == [{"count": 25}]


def test_gc_works_in_batches(gendurable_app, db, monkeypatch):
    store = gendurable_app._store
    insert_finished(db, 25, age=timedelta(days=2))
    batches = []
    sweep_batch = store.gc_sweep

    def record_batch(retention_seconds, batch):
        deleted = sweep_batch(retention_seconds, batch)
        batches.append(deleted)
        return deleted

    monkeypatch.setattr(store, "gc_sweep", record_batch)

    assert sweep_once(store, 86400, 10) == 25
    assert batches == [10, 10, 5]
    assert row_count(db) == 0


def test_gc_keeps_recent_rows(gendurable_app, db, events):
    recent = insert_finished(db, 3, age=timedelta(minutes=1))

    assert sweep_once(gendurable_app._store, 86400, 1000) == 0
    assert remaining_ids(db) == set(recent)
    assert [name for name, _, _ in events if name == "gc.swept"] == []


def test_gc_keeps_live_rows(gendurable_app, db):
    live = work.delay(1)
    db.execute(
        "UPDATE gen_durable SET inserted_at = now() - interval '10 days', "
        "run_at = now() - interval '10 days'"
    )

    assert sweep_once(gendurable_app._store, 86400, 1000) == 0
    assert remaining_ids(db) == {live.id}


def test_gc_keeps_children_of_live_parent(gendurable_app, db):
    parent = work.delay(1)
    children = insert_finished(db, 3, age=timedelta(days=2), parent_id=parent.id)

    assert sweep_once(gendurable_app._store, 86400, 1000) == 0
    assert remaining_ids(db) == {parent.id, *children}


def test_gc_deletes_children_of_finished_parent(gendurable_app, db):
    [parent] = insert_finished(db, 1, age=timedelta(days=3))
    insert_finished(db, 3, age=timedelta(days=2), parent_id=parent)

    assert sweep_once(gendurable_app._store, 86400, 1000) == 4
    assert row_count(db) == 0
