"""Applies the SQL files of ``migrations/`` in order, once, whatever number of processes run it.

A transaction-scoped advisory lock serialises concurrent runs; the applied versions are
recorded in ``gen_durable_migrations``. Each file runs in the same transaction as its record,
so a failed migration leaves nothing half-applied.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

import psycopg

from .errors import MigrationError

logger = logging.getLogger("gendurable")

# An arbitrary constant shared by every gendurable process: the key of the migration lock.
LOCK_KEY = 0x67656E64  # "gend"

_NAME = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def _folder() -> Traversable:
    shipped = resources.files("gendurable") / "migrations"
    if shipped.is_dir():
        return shipped
    # An editable install or a source checkout: the top-level folder beside the package.
    return resources.files("gendurable").joinpath("..", "migrations")


def migrations() -> list[Migration]:
    """Return the migrations shipped with this version, in order."""
    folder = _folder()
    found = []
    for entry in folder.iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match["version"]), match["name"], entry.read_text("utf-8")))
    if not found:
        raise RuntimeError(f"no migrations found in {folder}; the installation is incomplete")
    return sorted(found, key=lambda m: m.version)


def migrate(conninfo: str) -> list[Migration]:
    """Apply pending migrations; return those this call applied."""
    applied: list[Migration] = []
    with psycopg.connect(conninfo, autocommit=False) as conn:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        conn.execute(
            """
            CREATE TABLE IF NOT EXISTS gen_durable_migrations (
                version     integer PRIMARY KEY,
                name        text NOT NULL,
                checksum    text NOT NULL,
                applied_at  timestamptz NOT NULL DEFAULT now()
            )
            """
        )
        done: dict[int, str] = dict(
            conn.execute("SELECT version, checksum FROM gen_durable_migrations").fetchall()
        )
        for migration in migrations():
            if migration.version in done:
                if done[migration.version] != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.version:04d}_{migration.name} applied to this "
                        "database differs from the one in this version of gendurable; before "
                        "1.0 migrations are edited in place, so a database made by another "
                        "version needs to be recreated: use a fresh database (or delete the "
                        "embedded server's data folder) and run gendurable migrate"
                    )
                continue
            conn.execute(migration.sql)
            conn.execute(
                "INSERT INTO gen_durable_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                (migration.version, migration.name, migration.checksum),
            )
            applied.append(migration)
            logger.info("applied migration %04d_%s", migration.version, migration.name)
        conn.commit()
    return applied


def current_version(conn: psycopg.Connection[Any]) -> int | None:
    """Return the newest applied migration version, or None before the first migrate."""
    exists = conn.execute("SELECT to_regclass('gen_durable_migrations')").fetchone()
    if not exists or exists[0] is None:
        return None
    row = conn.execute("SELECT max(version) FROM gen_durable_migrations").fetchone()
    return None if row is None else row[0]


def latest_version() -> int:
    return migrations()[-1].version
