"""App settings: keyword arguments, GENDURABLE_* variables, durations, and mistakes."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from gendurable import App
from gendurable.errors import ConfigurationError

# Variables of the test run that would otherwise change what App() reads.
SETTING_VARIABLES = (
    "GENDURABLE_DATABASE_URL", "GENDURABLE_DATA_DIR", "GENDURABLE_LEASE_TIMEOUT",
    "GENDURABLE_POLL_INTERVAL", "GENDURABLE_REAPER_INTERVAL", "GENDURABLE_GC_INTERVAL",
    "GENDURABLE_GC_RETENTION", "GENDURABLE_GC_BATCH", "GENDURABLE_SHUTDOWN_GRACE",
    "GENDURABLE_POOL_SIZE",
)


@pytest.fixture
def apps(monkeypatch):
    """Build apps from a clean environment; close them after the test."""
    for variable in SETTING_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    built = []

    def build(*args, **kwargs):
        app = App(*args, include=(), **kwargs)
        built.append(app)
        return app

    yield build
    for app in built:
        app.close()


def test_defaults(apps):
    settings = apps().settings

    assert settings.database_url is None
    assert settings.data_dir == Path(".gendurable")
    assert settings.lease_timeout == 60.0
    assert settings.poll_interval == 1.0
    assert settings.reaper_interval == 5.0
    assert settings.gc_retention == 86400.0
    assert settings.gc_batch == 1000


def test_keyword_settings(apps):
    settings = apps("postgresql://127.0.0.1/example", lease_timeout=30, gc_batch=50).settings

    assert settings.database_url == "postgresql://127.0.0.1/example"
    assert settings.lease_timeout == 30.0
    assert settings.gc_batch == 50


def test_durations_accept_timedelta(apps):
    settings = apps(
        lease_timeout=timedelta(minutes=2), gc_retention=timedelta(days=7),
        poll_interval=timedelta(milliseconds=250),
    ).settings

    assert settings.lease_timeout == 120.0
    assert settings.gc_retention == 604800.0
    assert settings.poll_interval == 0.25


def test_environment_settings(apps, monkeypatch):
    monkeypatch.setenv("GENDURABLE_DATABASE_URL", "postgresql://127.0.0.1/from_env")
    monkeypatch.setenv("GENDURABLE_POLL_INTERVAL", "0.5")
    monkeypatch.setenv("GENDURABLE_GC_BATCH", "20")

    app = apps()

    assert app.settings.database_url == "postgresql://127.0.0.1/from_env"
    assert app.database_url == "postgresql://127.0.0.1/from_env"
    assert app.settings.poll_interval == 0.5
    assert app.settings.gc_batch == 20


def test_keyword_beats_environment(apps, monkeypatch):
    monkeypatch.setenv("GENDURABLE_LEASE_TIMEOUT", "90")

    assert apps(lease_timeout=15).settings.lease_timeout == 15.0


def test_other_variables_ignored(apps, monkeypatch):
    monkeypatch.setenv("GENDURABLE_APP", "proj.app")
    monkeypatch.setenv("GENDURABLE_QUEUES", "default=4")

    assert apps().settings.lease_timeout == 60.0


def test_unknown_setting_suggests_nearest(apps):
    with pytest.raises(ConfigurationError, match=r"lease_timout.*did you mean 'lease_timeout'"):
        apps(lease_timout=5)


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("lease_timeout", 0),
        ("lease_timeout", "soon"),
        ("lease_timeout", float("inf")),
        ("poll_interval", float("nan")),
        ("gc_retention", 1e13),
        ("gc_batch", 0),
        ("pool_size", 0),
    ],
)
def test_invalid_setting_rejected(apps, setting, value):
    with pytest.raises(ConfigurationError, match=f"{setting}.*got {value!r}"):
        apps(**{setting: value})


def test_invalid_environment_rejected(apps, monkeypatch):
    monkeypatch.setenv("GENDURABLE_LEASE_TIMEOUT", "later")

    with pytest.raises(ConfigurationError, match="lease_timeout.*'later'"):
        apps()
