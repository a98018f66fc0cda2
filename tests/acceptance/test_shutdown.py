"""SIGTERM drains a worker: what finishes, what is released, and what a second signal does."""

from __future__ import annotations

import signal

import pytest

from gendurable.cli import EXIT_FORCED, EXIT_OK

from . import jobs_app
from .support import APP, wait_until

pytestmark = pytest.mark.slow

DRAINING = "draining: waiting up to"


def test_sigterm_finishes_running_step(app, db, cluster):
    worker = cluster.worker("--queues", "default=4")
    db.wait_listening(1)
    running = app.insert(jobs_app.block.new("drain"), db.conn).id
    wait_until(lambda: db.count_executions(running) == 1, "the step is running")

    worker.send(signal.SIGTERM)
    worker.wait_log(DRAINING)
    later = [h.id for h in app.insert_all([jobs_app.record.new(n) for n in range(3)], db.conn)]
    db.release("drain")

    assert worker.wait_exit() == EXIT_OK
    assert db.status(running) == "done"
    assert db.value("SELECT result FROM gen_durable WHERE id = %s", (running,)) == "drain"
    (execution,) = db.executions(running)
    assert execution[2] is not None, "the step ran to its end"
    for job_id in later:
        assert db.rows(
            "SELECT status::text, attempt, lease_owner FROM gen_durable WHERE id = %s", (job_id,)
        ) == [("available", 0, None)]
        assert db.count_executions(job_id) == 0

    burst = cluster.run("worker", "-A", APP, "--burst")
    assert burst.returncode == EXIT_OK, burst.stderr
    assert db.count_status(later, "done") == len(later)


def test_sigterm_past_grace_releases_row(app, db, cluster):
    first = cluster.worker("--grace", "0.5")
    db.wait_listening(1)
    job_id = app.insert(jobs_app.block.new("grace"), db.conn).id
    wait_until(lambda: db.count_executions(job_id) == 1, "the step is running")

    first.send(signal.SIGTERM)
    assert first.wait_exit() == EXIT_OK
    # The lease (60 s by default) has not expired and no reaper runs: only the drain released it.
    assert db.rows(
        "SELECT status::text, attempt, lease_owner, lease_expires_at FROM gen_durable WHERE id = %s",
        (job_id,),
    ) == [("available", 0, None, None)]

    second = cluster.worker()
    wait_until(lambda: db.count_executions(job_id) == 2, "the second worker runs the step")
    db.release("grace")
    wait_until(lambda: db.status(job_id) == "done", "the job is done")
    interrupted, rerun = db.executions(job_id)
    assert interrupted[:3] == (1, first.pid, None)
    assert rerun[:2] == (1, second.pid), "a released attempt does not count"
    assert rerun[2] is not None
    assert db.value("SELECT errors FROM gen_durable WHERE id = %s", (job_id,)) == []


def test_second_sigterm_exits_at_once(app, db, cluster):
    settings = {"lease_timeout": 2, "reaper_interval": 0.5}
    first = cluster.worker(**settings)
    db.wait_listening(1)
    job_id = app.insert(jobs_app.block.new("forced"), db.conn).id
    wait_until(lambda: db.count_executions(job_id) == 1, "the step is running")

    first.send(signal.SIGTERM)
    first.wait_log(DRAINING)
    first.send(signal.SIGTERM)
    assert first.wait_exit() == EXIT_FORCED
    ((status, owner),) = db.rows(
        "SELECT status::text, lease_owner FROM gen_durable WHERE id = %s", (job_id,)
    )
    assert status == "running", "a forced stop leaves the lease to expire"
    assert f":{first.pid}:" in owner

    cluster.beat(**settings)
    second = cluster.worker(**settings)
    db.release("forced")
    wait_until(lambda: db.status(job_id) == "done", "the reaper rescued the row and it ran again")
    interrupted, rerun = db.executions(job_id)
    assert interrupted[:3] == (1, first.pid, None)
    assert rerun[:2] == (2, second.pid)
    (error,) = db.value("SELECT errors FROM gen_durable WHERE id = %s", (job_id,))
    assert "expired" in error["error"]
