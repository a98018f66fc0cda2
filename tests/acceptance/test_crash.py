"""A worker killed outright, and a worker whose database connections are cut under it."""

from __future__ import annotations

import signal

import pytest

from . import jobs_app
from .support import wait_until

pytestmark = pytest.mark.slow

# Leases expire quickly and the reaper looks often, so rescued rows come back within seconds.
FAST_REAPER = {"lease_timeout": 2, "reaper_interval": 0.5}


def test_sigkill_mid_step_reruns_step(app, db, cluster):
    beat = cluster.beat(**FAST_REAPER)
    first = cluster.worker("--queues", "default=4", **FAST_REAPER)
    db.wait_listening(1)
    tags = ["a", "b", "c"]
    blocked = [h.id for h in app.insert_all([jobs_app.block.new(tag) for tag in tags], db.conn)]
    wait_until(lambda: all(db.count_executions(i) == 1 for i in blocked),
               "the three steps are running in the first worker")

    first.kill()
    assert first.popen.returncode == -signal.SIGKILL
    queued = [h.id for h in app.insert_all([jobs_app.record.new(n) for n in range(5)], db.conn)]
    second = cluster.worker("--queues", "default=4", **FAST_REAPER)
    wait_until(lambda: all(db.count_executions(i) == 2 for i in blocked),
               "the reaper rescued the three rows and the second worker runs them again")
    for tag in tags:
        db.release(tag)
    wait_until(lambda: db.count_status(blocked + queued, "done") == 8, "every job is done", 30)

    for job_id in blocked:
        interrupted, rerun = db.executions(job_id)
        assert interrupted[:2] == (1, first.pid)
        assert interrupted[2] is None, "the killed run cannot have finished"
        assert rerun[:2] == (2, second.pid)
        assert rerun[2] is not None
        errors = db.value("SELECT errors FROM gen_durable WHERE id = %s", (job_id,))
        assert len(errors) == 1
        assert "expired" in errors[0]["error"]
    for job_id in queued:
        assert [execution[:2] for execution in db.executions(job_id)] == [(1, second.pid)]
    assert db.value("SELECT count(*) FROM gen_durable WHERE status <> 'done'") == 0
    assert db.value("SELECT count(*) FROM executions") == 2 * len(blocked) + len(queued)
    assert beat.popen.poll() is None
    assert second.popen.poll() is None


def test_terminated_connections_lose_no_job(app, db, cluster):
    settings = {"lease_timeout": 3, "reaper_interval": 0.5}
    beat = cluster.beat(**settings)
    worker = cluster.worker("--queues", "default=4", **settings)
    db.wait_listening(1)
    inserted: list[int] = []

    for round_number in range(3):
        batch = app.insert_all([jobs_app.sleep_for.new(0.02) for _ in range(100)], db.conn)
        inserted += [h.id for h in batch]
        ids = [h.id for h in batch]
        wait_until(
            lambda ids=ids: db.value(
                "SELECT count(DISTINCT job_id) FROM executions WHERE job_id = ANY(%s)", (ids,)
            ) >= 10,
            f"round {round_number} has started running",
        )
        terminated = db.terminate("gendurable%")
        assert terminated >= 2, "the listener and the feeder at least were connected"

    wait_until(lambda: db.count_status(inserted, "done") == len(inserted),
               "every job is done after the connections came back", 60)
    executed = {job_id for (job_id,) in db.rows("SELECT DISTINCT job_id FROM executions")}
    assert executed == set(inserted)
    assert db.value("SELECT count(*) FROM gen_durable WHERE status <> 'done'") == 0
    assert worker.popen.poll() is None, "the worker must survive losing its connections"
    assert beat.popen.poll() is None
    assert "lost its database connection" in worker.log()
