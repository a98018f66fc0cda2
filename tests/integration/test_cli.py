"""The gendurable command in-process, for the commands that need no worker."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from gendurable import durable_job
from gendurable.cli import EXIT_FAILURE, EXIT_NOT_FOUND, EXIT_USAGE, main

from .helpers import get_row

CLI_APP = f"{__package__}.cli_app"
# The folder holding the top-level test package, from which -A paths import.
ROOT = Path(__file__).parents[len(__package__.split("."))]
APP_PATH = f"{CLI_APP}:app"

switches = {"broken": False}


@durable_job(queue="cli_queue")
def ping(n: int) -> int:
    return n


@durable_job(max_attempts=1)
def fragile() -> str:
    if switches["broken"]:
        raise RuntimeError("still broken")
    return "mended"


@durable_job(correlation_key="cli-key")
def keyed_ping() -> int:
    return 1


@pytest.fixture
def cli(gendurable_app, gendurable_database_url, monkeypatch):
    """Run ``gendurable ARGS...`` in this process against the test database."""
    monkeypatch.setenv("GENDURABLE_DATABASE_URL", gendurable_database_url)
    # load_app puts the working directory on sys.path, so the test gets its own copy.
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir(ROOT)
    sys.modules.pop(CLI_APP, None)
    module = importlib.import_module(CLI_APP)
    gendurable_app.set_current()
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(main, [str(arg) for arg in args], catch_exceptions=False)

    yield invoke
    module.app.close()
    sys.modules.pop(CLI_APP, None)


def test_inspect_prints_json(cli):
    handle = ping.delay(1)

    result = cli("inspect", "-A", APP_PATH, handle.id)

    assert result.exit_code == 0
    instance = json.loads(result.stdout)
    assert instance["id"] == handle.id
    assert instance["fsm"] == ping.name
    assert instance["status"] == "available"
    assert instance["state"] == {"args": {"n": 1}}


def test_inspect_missing_instance(cli):
    result = cli("inspect", "-A", APP_PATH, 999)

    assert result.exit_code == EXIT_NOT_FOUND
    assert "no instance with id 999" in result.stderr


def test_cancel_available_instance(cli, db):
    handle = ping.delay(1)

    result = cli("cancel", "-A", APP_PATH, handle.id)

    assert result.exit_code == 0
    assert result.stdout == f"instance {handle.id}: cancelled\n"
    assert get_row(db, handle.id)["status"] == "cancelled"


def test_cancel_missing_instance(cli):
    result = cli("cancel", "-A", APP_PATH, 999)

    assert result.exit_code == EXIT_NOT_FOUND
    assert "999" in result.stderr


def test_retry_failed_instance(cli, gendurable_app, db, monkeypatch):
    monkeypatch.setitem(switches, "broken", True)
    handle = fragile.delay()
    gendurable_app.drain()
    monkeypatch.setitem(switches, "broken", False)

    result = cli("retry", "-A", APP_PATH, handle.id)

    assert result.exit_code == 0
    assert result.stdout == f"instance {handle.id}: available\n"
    assert get_row(db, handle.id)["attempt"] == 0
    assert gendurable_app.drain() == {"done": 1}
    assert handle.result(timeout=0) == "mended"


def test_retry_running_instance(cli, db):
    handle = ping.delay(1)
    db.execute(
        "UPDATE gen_durable SET status = 'running', lease_owner = 'w', "
        "lease_expires_at = now() + interval '1 minute' WHERE id = %s",
        (handle.id,),
    )

    result = cli("retry", "-A", APP_PATH, handle.id)

    assert result.exit_code == EXIT_FAILURE
    assert "cannot be retried" in result.stderr


def test_retry_with_live_key(cli, gendurable_app):
    first = keyed_ping.delay()
    gendurable_app.drain()
    keyed_ping.delay()

    result = cli("retry", "-A", APP_PATH, first.id)

    assert result.exit_code == EXIT_FAILURE
    assert "another live instance has its correlation key" in result.stderr


def test_retry_missing_instance(cli):
    result = cli("retry", "-A", APP_PATH, 999)

    assert result.exit_code == EXIT_NOT_FOUND


def test_queue_pause_and_resume(cli, gendurable_app):
    paused = cli("queue", "pause", "-A", APP_PATH, "cli_queue")

    assert paused.exit_code == 0
    assert paused.stdout == "queue cli_queue paused\n"
    assert gendurable_app._store.paused_queues() == ["cli_queue"]

    resumed = cli("queue", "resume", "-A", APP_PATH, "cli_queue")

    assert resumed.exit_code == 0
    assert resumed.stdout == "queue cli_queue resumed\n"
    assert gendurable_app._store.paused_queues() == []


def test_queue_pause_unknown_queue(cli, gendurable_app):
    result = cli("queue", "pause", "-A", APP_PATH, "cli_qeueu")

    assert result.exit_code == EXIT_USAGE
    assert "did you mean 'cli_queue'" in result.stderr
    assert gendurable_app._store.paused_queues() == []


def test_status_without_instances(cli):
    result = cli("status", "-A", APP_PATH)

    assert result.exit_code == 0
    assert result.stdout == "no instances\n"


def test_status_counts_by_queue(cli, gendurable_app):
    ping.delay(1)
    ping.delay(2)
    gendurable_app.drain()
    ping.delay(3)
    gendurable_app.pause_queue("cli_queue")

    result = cli("status", "-A", APP_PATH)

    assert result.exit_code == 0
    header, line = result.stdout.splitlines()
    assert header.split()[:8] == [
        "queue", "available", "scheduled", "running", "awaiting", "done", "failed", "cancelled",
    ]
    assert line.startswith("cli_queue (paused)")
    counts = line.removeprefix("cli_queue (paused)").split()
    assert counts[:7] == ["1", "0", "0", "0", "2", "0", "0"]


def test_status_counts_scheduled_apart(cli, gendurable_app):
    ping.apply_async((1,), countdown=3600)

    result = cli("status", "-A", APP_PATH)

    header, line = result.stdout.splitlines()
    counts = dict(zip(header.split()[1:8], line.split()[1:8], strict=True))
    assert counts["available"] == "0"
    assert counts["scheduled"] == "1"


@pytest.mark.parametrize(
    ("path", "suggestion"),
    [
        (f"{__package__}.cli_ap:app", f"did you mean '{CLI_APP}'"),
        (f"{__package__.replace('tests', 'testz', 1)}.cli_app:app", f"did you mean '{CLI_APP}'"),
        (f"{CLI_APP}:ap", "did you mean 'app'"),
        (f"{CLI_APP}:not_an_app", "the module has an App named 'app'"),
    ],
)
def test_mistyped_app_path(cli, path, suggestion):
    result = cli("status", "-A", path)

    assert result.exit_code == EXIT_USAGE
    assert suggestion in result.stderr


def test_app_with_failing_import(cli):
    with pytest.raises(ModuleNotFoundError, match="cli_broken'"):
        cli("status", "-A", f"{__package__}.cli_broken_app:app")
