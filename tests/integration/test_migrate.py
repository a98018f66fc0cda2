"""Migrations: concurrent `gendurable migrate` runs, and the files the wheel ships."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from gendurable.migrate import migrations

PROJECT = Path(__file__).resolve().parents[2]
# The folder holding the top-level test package, from which -A paths import.
ROOT = Path(__file__).parents[len(__package__.split("."))]
APP_PATH = f"{__package__}.cli_app:app"


@pytest.fixture
def empty_database_url(gendurable_database_url):
    """Create a database with nothing in it on the test server, and drop it after the test."""
    name = f"gendurable_empty_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(gendurable_database_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    params = conninfo_to_dict(gendurable_database_url) | {"dbname": name}
    yield make_conninfo("", **params)
    with psycopg.connect(gendurable_database_url, autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def test_concurrent_migrate_applies_once(empty_database_url):
    env = os.environ | {"GENDURABLE_DATABASE_URL": empty_database_url}
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "gendurable", "migrate", "-A", APP_PATH],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for _ in range(4)
    ]
    outputs = [process.communicate(timeout=60) for process in processes]

    assert [process.returncode for process in processes] == [0, 0, 0, 0], outputs
    lines = sorted(stdout.strip() for stdout, _ in outputs)
    latest = migrations()[-1]
    assert lines == [
        f"applied {latest.version:04d}_{latest.name}",
        "schema is up to date",
        "schema is up to date",
        "schema is up to date",
    ]
    with psycopg.connect(empty_database_url) as conn:
        applied = conn.execute("SELECT version FROM gen_durable_migrations").fetchall()
        tables = conn.execute("SELECT to_regclass('gen_durable') IS NOT NULL").fetchone()
    assert applied == [(migration.version,) for migration in migrations()]
    assert tables == (True,)


@pytest.mark.slow
def test_wheel_ships_sql_files(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path)],
        cwd=PROJECT, check=True, capture_output=True,
    )

    [wheel] = tmp_path.glob("gendurable-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert "gendurable/migrations/0001_initial.sql" in names
    sql_files = {f"gendurable/sql/{path.name}" for path in (PROJECT / "gendurable" / "sql").glob("*.sql")}
    assert sql_files
    assert sql_files <= names
