"""Helpers of the FSM acceptance tests: worker processes on ``fsm_app`` and its run records."""

from __future__ import annotations

from typing import Any

from tests.acceptance import fsm_app
from tests.acceptance.support import Cluster, Database, Process

FSM_APP = "tests.acceptance.fsm_app:app"


def install_schema(db: Database) -> None:
    """Create the tables that the steps of ``fsm_app`` record their runs in."""
    db.conn.execute(fsm_app.SCHEMA)


def fsm_worker(cluster: Cluster, *args: str, **settings: object) -> Process:
    """Start ``gendurable worker -A fsm_app [args]`` with the given settings."""
    return cluster.start("worker", "worker", "-A", FSM_APP, *args, **settings)


def fsm_beat(cluster: Cluster, **settings: object) -> Process:
    return cluster.start("beat", "beat", "-A", FSM_APP, **settings)


def runs(db: Database, instance_id: int, step: str | None = None) -> list[dict[str, Any]]:
    """Return the recorded runs of one instance (of one step, if given), in start order."""
    rows = db.rows(
        "SELECT step, attempt, pid, state, started_at, ended_at FROM fsm_runs "
        "WHERE instance_id = %s AND (%s::text IS NULL OR step = %s) ORDER BY id",
        (instance_id, step, step),
    )
    names = ("step", "attempt", "pid", "state", "started_at", "ended_at")
    return [dict(zip(names, row, strict=True)) for row in rows]
