"""State machines in real worker processes: concurrency keys across workers, a fan-out of
200 children joined once, and a worker killed in the middle of a step."""

from __future__ import annotations

import signal
from collections import defaultdict

import pytest

from tests.fsm_support import fsm_beat, fsm_worker, install_schema, runs

from . import fsm_app
from .support import max_overlap, wait_until

pytestmark = pytest.mark.slow

# Workers poll often, because a row held back by its concurrency key gets no wakeup when the
# key frees up in another worker.
FAST_POLL = {"poll_interval": 0.2}
# Leases expire quickly and the reaper looks often, so a killed worker's row comes back soon.
FAST_REAPER = {"lease_timeout": 2, "reaper_interval": 0.5}


@pytest.fixture(autouse=True)
def _schema(db):
    install_schema(db)


def test_concurrency_key_never_overlaps(app, db, cluster):
    # Two slots each, so that no worker can hold all three keys at once.
    for _ in range(3):
        fsm_worker(cluster, "--queues", "fsm_serial=2", **FAST_POLL)
    db.wait_listening(3)
    keys = ["red", "green", "blue"]
    handles = app.insert_all([
        fsm_app.Serial.new(fsm_app.Serial.State(key=keys[n % 3]), concurrency_key=keys[n % 3])
        for n in range(30)
    ], db.conn)
    ids = [h.id for h in handles]

    wait_until(lambda: db.count_status(ids, "done") == len(ids), "every instance is done", 60)

    intervals = defaultdict(list)
    for key, started, ended in db.rows("SELECT key, started_at, ended_at FROM fsm_runs"):
        assert ended is not None
        intervals[key].append((started, ended))
    assert {key: len(found) for key, found in intervals.items()} == dict.fromkeys(keys, 20)
    for key in keys:
        assert max_overlap(intervals[key]) == 1, f"two runs of key {key!r} overlapped"


def test_fanout_joins_once(app, db, cluster):
    for _ in range(2):
        fsm_worker(cluster, "--queues", "fsm_fanout=2,fsm_fanout_children=4")
    db.wait_listening(2)
    size = 200

    parent = fsm_app.FanOut.start(fsm_app.FanOut.State(size=size), connection=db.conn)

    wait_until(lambda: db.status(parent.id) == "done", "the parent joined its children", 60)
    assert parent.result(timeout=0) == {
        "count": size,
        "statuses": ["done"],
        "results": sorted(n * n for n in range(size)),
    }
    assert len(runs(db, parent.id, "join")) == 1, "the join step ran exactly once"
    child_runs = db.value(
        "SELECT count(*) FROM fsm_runs r JOIN gen_durable g ON g.id = r.instance_id "
        "WHERE g.parent_id = %s", (parent.id,),
    )
    assert child_runs == size
    assert db.value("SELECT pending_children FROM gen_durable WHERE id = %s", (parent.id,)) == 0


def test_sigkill_mid_step_reruns_only_that_step(app, db, cluster):
    fsm_beat(cluster, **FAST_REAPER)
    first = fsm_worker(cluster, "--queues", "fsm_crash=2", **FAST_REAPER)
    db.wait_listening(1)
    handle = fsm_app.ThreeSteps.start(fsm_app.ThreeSteps.State(order=7), connection=db.conn)
    wait_until(lambda: runs(db, handle.id, "ship"), "the second step is running")

    first.kill()
    assert first.popen.returncode == -signal.SIGKILL
    second = fsm_worker(cluster, "--queues", "fsm_crash=2", **FAST_REAPER)
    wait_until(lambda: len(runs(db, handle.id, "ship")) == 2,
               "the reaper rescued the row and the second worker runs the step again", 30)
    db.conn.execute("INSERT INTO fsm_releases (tag) VALUES (%s)", (str(handle.id),))

    assert handle.result(timeout=30) == {"order": 7, "charge": "ch-7", "shipped": True}
    recorded = runs(db, handle.id)
    assert [(r["step"], r["attempt"], r["pid"]) for r in recorded] == [
        ("charge_card", 1, first.pid),
        ("ship", 1, first.pid),
        ("ship", 2, second.pid),
        ("notify", 1, second.pid),
    ]
    assert recorded[1]["ended_at"] is None, "the killed run cannot have finished"
    committed = {"order": 7, "charge": "ch-7", "shipped": False}
    assert recorded[1]["state"] == committed
    assert recorded[2]["state"] == committed, "the rerun starts from the committed state"
    errors = db.value("SELECT errors FROM gen_durable WHERE id = %s", (handle.id,))
    assert [(e["step"], e["attempt"]) for e in errors] == [("ship", 1)]
    assert "expired" in errors[0]["error"]
