"""The command line: burst mode, ``python -m gendurable``, and usage errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gendurable.cli import EXIT_OK, EXIT_USAGE

from . import jobs_app
from .support import APP, ROOT

pytestmark = pytest.mark.slow


def test_burst_exits_when_idle(app, db, cluster):
    now = [jobs_app.record.new(n) for n in range(20)]
    now.append(jobs_app.record.new(20, queue="pausable"))
    ids = [h.id for h in app.insert_all(now, db.conn)]
    later = jobs_app.record.apply_async(args=(99,), countdown=3600, connection=db.conn).id

    # Without --queues the worker serves every queue the app accepts, "default" included.
    result = cluster.run("worker", "-A", APP, "--burst")
    assert result.returncode == EXIT_OK, result.stderr
    assert db.count_status(ids, "done") == len(ids)
    assert db.value("SELECT count(*) FROM executions") == len(ids)
    assert db.status(later) == "available", "a row due in an hour is not runnable yet"


def test_python_m_gendurable_help():
    result = subprocess.run(
        [sys.executable, "-m", "gendurable", "--help"], cwd=ROOT, stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == EXIT_OK, result.stderr
    for command in ("worker", "beat", "cancel", "queue"):
        assert command in result.stdout


@pytest.mark.parametrize(
    ("args", "named", "suggested"),
    [
        (["worker", "-A", APP, "--queues", "defualt=2"], "'defualt'", "'default'"),
        (["worker", "-A", "tests.acceptance.jobs_ap:app"], "'tests.acceptance.jobs_ap'",
         "'tests.acceptance.jobs_app'"),
        (["worker", "-A", "tests.acceptance.jobs_app:ap"], "no attribute 'ap'", "'app'"),
        (["queue", "pause", "pausabel", "-A", APP], "'pausabel'", "'pausable'"),
    ],
    ids=["queue", "app-module", "app-attribute", "paused-queue"],
)
def test_usage_error_suggests_name(cluster, args, named, suggested):
    result = cluster.run(*args)
    assert result.returncode == EXIT_USAGE, result.stderr
    assert named in result.stderr
    assert f"did you mean {suggested}?" in result.stderr
