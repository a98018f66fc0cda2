"""Cancelling a running job: a sync step finds ctx.cancelled set, an async step is cancelled."""

from __future__ import annotations

import pytest

from gendurable.errors import InstanceCancelled
from gendurable.status import Status

from . import jobs_app
from .support import APP, wait_until

pytestmark = pytest.mark.slow


def test_cancel_command_stops_sync_step(app, db, cluster):
    cluster.worker()
    db.wait_listening(1)
    handle = app.insert(jobs_app.wait_for_cancel.new(), db.conn)
    wait_until(lambda: db.count_executions(handle.id) == 1, "the step is running")

    result = cluster.run("cancel", str(handle.id), "-A", APP)
    assert result.returncode == 0, result.stderr
    assert f"instance {handle.id}: running (asked to stop)" in result.stdout
    wait_until(lambda: db.status(handle.id) == "cancelled", "the job ends cancelled")
    ((attempt, _, ended_at, note),) = db.executions(handle.id)
    assert attempt == 1
    assert ended_at is not None
    assert note == "saw ctx.cancelled"
    assert db.value("SELECT result FROM gen_durable WHERE id = %s", (handle.id,)) is None
    with pytest.raises(InstanceCancelled):
        handle.result(timeout=0)


def test_handle_cancel_stops_async_step(app, db, cluster):
    cluster.worker()
    db.wait_listening(1)
    handle = app.insert(jobs_app.sleep_async.new(), db.conn)
    wait_until(lambda: db.count_executions(handle.id) == 1, "the step is running")

    assert handle.cancel(connection=db.conn) is Status.RUNNING
    wait_until(lambda: db.status(handle.id) == "cancelled", "the job ends cancelled")
    ((attempt, _, ended_at, note),) = db.executions(handle.id)
    assert attempt == 1
    assert ended_at is not None
    assert note == "CancelledError"
    with pytest.raises(InstanceCancelled):
        handle.result(timeout=0)
