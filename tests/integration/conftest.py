"""Fixtures of the integration tests: SQL access to the test database and telemetry capture."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from gendurable import App, telemetry

Event = tuple[str, dict[str, float], dict[str, Any]]


@pytest.fixture
def db(gendurable_app: App, gendurable_database_url: str) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection to the test database, whose tables ``gendurable_app`` emptied."""
    with psycopg.connect(gendurable_database_url, autocommit=True, row_factory=dict_row) as conn:
        yield conn


@pytest.fixture
def events() -> Iterator[list[Event]]:
    """Every telemetry event emitted during the test, in order."""
    recorded: list[Event] = []

    def record(event: str, measurements: Mapping[str, float], metadata: Mapping[str, Any]) -> None:
        recorded.append((event, dict(measurements), dict(metadata)))

    telemetry.attach("tests.events", None, record)
    yield recorded
    telemetry.detach("tests.events")


@pytest.fixture
def make_app(gendurable_database_url: str) -> Iterator[Any]:
    """Build more apps on the test database, which become current, and close them after the test."""
    apps: list[App] = []

    def build(**options: Any) -> App:
        app = App(gendurable_database_url, include=(), **options)
        apps.append(app)
        return app

    yield build
    for app in apps:
        app.close()

