"""The pytest plugin: a fresh, migrated database per test session and clean tables per test.

Installed with gendurable (entry point ``pytest11``), so its fixtures are available in any
project's tests:

``gendurable_database_url``
    Session-wide URL of a database created for this session from a migrated template, on
    ``GENDURABLE_TEST_DATABASE_URL``'s server if set, else on the embedded server. Dropped at
    the end of the session.
``gendurable_app``
    An ``App`` on that database, made current, with every gendurable table emptied first.
``gendurable_database_factory``
    A function that creates one more migrated database and returns its URL, for tests that
    need a database of their own (for example one that worker processes share).
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from .app import App
from .migrate import migrate, migrations

TEST_URL_VARIABLE = "GENDURABLE_TEST_DATABASE_URL"
_TABLES = (
    "gen_durable",
    "gen_durable_queues",
    "gen_durable_signals",
    "gen_durable_schedules",
    "gen_durable_ticks",
)


def server_url() -> str:
    """Return the URL of the server tests run on: the variable's, else the embedded server's."""
    url = os.environ.get(TEST_URL_VARIABLE)
    if url:
        return url
    from pathlib import Path

    from .embedded import database_url

    return database_url(Path(os.environ.get("GENDURABLE_DATA_DIR", ".gendurable")))


def _with_database(url: str, name: str) -> str:
    """Return ``url`` pointing at database ``name``."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(url)
    params["dbname"] = name
    return make_conninfo("", **params)


def _template(admin: psycopg.Connection[Any], url: str) -> str:
    """Create (once per schema version) a migrated template database; return its name."""
    digest = hashlib.sha256("".join(m.sql for m in migrations()).encode()).hexdigest()[:12]
    name = f"gendurable_template_{digest}"
    admin.execute("SELECT pg_advisory_lock(hashtext(%s))", (name,))
    try:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            migrate(_with_database(url, name))
    finally:
        admin.execute("SELECT pg_advisory_unlock(hashtext(%s))", (name,))
    return name


class DatabaseFactory:
    """Creates migrated databases from the template and drops them when closed."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._admin = psycopg.connect(url, autocommit=True)
        self._template = _template(self._admin, url)
        self._created: list[str] = []

    def __call__(self) -> str:
        name = f"gendurable_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        self._admin.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(self._template)
            )
        )
        self._created.append(name)
        return _with_database(self.url, name)

    def close(self) -> None:
        for name in self._created:
            self._admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        self._admin.close()


def reap(app: App) -> int:
    """Run one reaper pass now, as beat would: rescue expired leases, cancel rows past their
    ``expires``, and fire due ``Await`` timeouts. Returns how many leases were rescued."""
    from ._beat.reaper import reap_once

    return reap_once(app._store)


def truncate(url: str) -> None:
    """Empty every gendurable table of the database at ``url``."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {', '.join(_TABLES)} RESTART IDENTITY")


@pytest.fixture(scope="session")
def gendurable_database_factory() -> Iterator[Callable[[], str]]:
    factory = DatabaseFactory(server_url())
    yield factory
    factory.close()


@pytest.fixture(scope="session")
def gendurable_database_url(gendurable_database_factory: Callable[[], str]) -> str:
    return gendurable_database_factory()


@pytest.fixture
def gendurable_app(gendurable_database_url: str) -> Iterator[App]:
    truncate(gendurable_database_url)
    app = App(gendurable_database_url, include=())
    app.set_current()
    yield app
    app.close()
