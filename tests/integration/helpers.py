"""Small SQL helpers for reading rows in assertions."""

from __future__ import annotations

from typing import Any

import psycopg


def row_count(db: psycopg.Connection[Any]) -> int:
    found = db.execute("SELECT count(*) AS n FROM gen_durable").fetchone()
    assert found is not None
    return int(found["n"])


def get_row(db: psycopg.Connection[Any], instance_id: int) -> dict[str, Any]:
    found = db.execute("SELECT * FROM gen_durable WHERE id = %s", (instance_id,)).fetchone()
    assert found is not None, f"no row with id {instance_id}"
    return dict(found)


def db_now(db: psycopg.Connection[Any]) -> Any:
    """Return the database clock, which schedules every row."""
    found = db.execute("SELECT now() AS now").fetchone()
    assert found is not None
    return found["now"]
