"""Wakeups through LISTEN/NOTIFY, and queues paused and resumed from the command line.

The workers here poll once a minute, so a job picked within the 15 s deadline was picked
because a notification woke the worker.
"""

from __future__ import annotations

import pytest

from . import jobs_app
from .support import APP, wait_until

pytestmark = pytest.mark.slow

RARE_POLLS = {"poll_interval": 60}
WAKEUP_DEADLINE = 15.0


def test_notify_wakes_worker(app, db, cluster):
    worker = cluster.worker(**RARE_POLLS)
    (listener,) = db.wait_listening(1)
    first = jobs_app.record.apply_async(args=(1,), connection=db.conn).id
    wait_until(lambda: db.status(first) == "done", "the notified worker ran the job", WAKEUP_DEADLINE)

    assert db.terminate("gendurable listener") == 1
    # The listener looks for work once after reconnecting, so a job inserted while it may still
    # be down runs too.
    second = jobs_app.record.apply_async(args=(2,), connection=db.conn).id
    wait_until(lambda: db.status(second) == "done", "the job inserted during the outage ran",
               WAKEUP_DEADLINE)
    (new_listener,) = db.wait_listening(1)
    assert new_listener != listener
    third = jobs_app.record.apply_async(args=(3,), connection=db.conn).id
    wait_until(lambda: db.status(third) == "done", "the reconnected listener was notified",
               WAKEUP_DEADLINE)

    assert [db.count_executions(job_id) for job_id in (first, second, third)] == [1, 1, 1]
    assert worker.popen.poll() is None


def test_pause_and_resume_queue(app, db, cluster):
    cluster.worker("--queues", "default=2,pausable=2", **RARE_POLLS)
    db.wait_listening(1)
    paused = cluster.run("queue", "pause", "pausable", "-A", APP)
    assert paused.returncode == 0, paused.stderr
    assert "queue pausable paused" in paused.stdout

    paused_job = jobs_app.record.apply_async(args=(1,), queue="pausable", connection=db.conn).id
    # The wakeup for this job makes the worker pick for every queue it serves in one statement,
    # which runs after the paused job was committed: so the pause, not chance, kept it back.
    other = jobs_app.record.apply_async(args=(2,), connection=db.conn).id
    wait_until(lambda: db.status(other) == "done", "the job of the running queue is done")
    assert db.status(paused_job) == "available"
    assert db.count_executions(paused_job) == 0
    status = cluster.run("status", "-A", APP)
    assert status.returncode == 0, status.stderr
    assert "pausable (paused)" in status.stdout

    resumed = cluster.run("queue", "resume", "pausable", "-A", APP)
    assert resumed.returncode == 0, resumed.stderr
    assert "queue pausable resumed" in resumed.stdout
    wait_until(lambda: db.status(paused_job) == "done", "the resumed queue's job is done", WAKEUP_DEADLINE)
    assert db.count_executions(paused_job) == 1
