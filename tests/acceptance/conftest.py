"""Fixtures of the acceptance tests: a fresh database per test, real processes on it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from gendurable import App

from . import jobs_app
from .support import Cluster, Database


@pytest.fixture
def database_url(gendurable_database_factory: Callable[[], str]) -> str:
    """A migrated database of this test's own, with the tables jobs record into."""
    url = gendurable_database_factory()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(jobs_app.SCHEMA)
    return url


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    yield database
    database.close()


@pytest.fixture
def app(database_url: str) -> Iterator[App]:
    """An App on the test database, current, so that ``job.delay()`` inserts there."""
    instance = App(database_url, queues=jobs_app.app.queues, include=())
    instance.set_current()
    yield instance
    instance.close()


@pytest.fixture
def cluster(database_url: str, tmp_path: Path) -> Iterator[Cluster]:
    """Starts gendurable processes on the test database; kills every one of them at the end."""
    processes = Cluster(database_url, tmp_path)
    yield processes
    processes.close()
