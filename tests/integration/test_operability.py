"""What an operator meets first: configuration from the environment, a database that went
away or was never migrated, and limits that stop a typo from taking a host down."""

from datetime import UTC, datetime

import psycopg
import pytest
from click.testing import CliRunner

from gendurable import App, durable_job
from gendurable.cli import main
from gendurable.errors import InvalidOption, MigrationError
from gendurable.schedules import Schedule, crontab, from_celery


@durable_job
def echo(value: int) -> int:
    return value


class UnprintableError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no message for you")


@durable_job(max_attempts=1)
def raises_unprintable() -> None:
    raise UnprintableError


def test_cli_reads_app_from_environment(gendurable_app, gendurable_database_url, monkeypatch):
    monkeypatch.setenv("GENDURABLE_DATABASE_URL", gendurable_database_url)
    monkeypatch.setenv("GENDURABLE_APP", "tests.integration.cli_app:app")

    result = CliRunner().invoke(main, ["status"])

    assert result.exit_code == 0, result.output


def test_delay_survives_terminated_pool_connection(gendurable_app, gendurable_database_url):
    echo.delay(1)
    with psycopg.connect(gendurable_database_url, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'gendurable app' AND datname = current_database()"
        )

    handle = echo.delay(2)

    assert handle.inserted


def test_unmigrated_database_named_in_error(gendurable_app, gendurable_database_url):
    name = "gendurable_unmigrated_probe"
    with psycopg.connect(gendurable_database_url, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name}")
        admin.execute(f"CREATE DATABASE {name}")
    url = psycopg.conninfo.make_conninfo(gendurable_database_url, dbname=name)
    app = App(url, include=())
    try:
        with pytest.raises(MigrationError, match="gendurable migrate"):
            echo.delay(3)
    finally:
        app.close()
        gendurable_app.set_current()
        with psycopg.connect(gendurable_database_url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_worker_concurrency_capped(gendurable_app):
    with pytest.raises(InvalidOption, match="from 1 to 1000"):
        gendurable_app.worker_queues("default=100000")


def test_unprintable_exception_recorded(gendurable_app):
    handle = raises_unprintable.delay()

    assert gendurable_app.drain() == {"failed": 1}
    row = gendurable_app.inspect(handle.id)
    assert "UnprintableError" in row["errors"][-1]["error"]


def ticks(schedule: Schedule, count: int) -> list[str]:
    start = datetime(2026, 12, 1, tzinfo=UTC)
    found = schedule.ticks(start, start)
    return [next(found).strftime("%a %d %H:%M") for _ in range(count)]


def test_crontab_days_combine_like_celery():
    # Celery fires when both day fields match: the first Monday of the month only.
    schedule = from_celery(
        "first-monday",
        {"task": "t", "schedule": crontab(minute=0, hour=9, day_of_week="monday",
                                          day_of_month="1-7")},
        "UTC",
    )
    assert ticks(schedule, 2) == ["Mon 07 09:00", "Mon 04 09:00"]


def test_crontab_accepts_lists_and_day_names():
    schedule = from_celery(
        "half-hours", {"task": "t", "schedule": crontab(minute=[0, 30], day_of_week="tuesday")},
        "UTC",
    )
    assert schedule.cron == "0,30 * * * tue"
    assert ticks(schedule, 2) == ["Tue 01 00:30", "Tue 01 01:00"]


def test_six_field_cron_rejected():
    with pytest.raises(InvalidOption, match="five fields"):
        Schedule(name="s", target="t", cron="0 0 * * * *")


def test_unknown_keyword_named(gendurable_app):
    from gendurable.errors import InvalidArguments

    with pytest.raises(InvalidArguments, match="has no parameter 'valeu' \\(did you mean 'value'\\?\\)"):
        echo.delay(valeu=1)


def test_handle_of_text_id_rejected(gendurable_app):
    with pytest.raises(InvalidOption, match="'abc'"):
        gendurable_app.handle("abc")


def test_long_correlation_key_rejected(gendurable_app):
    with pytest.raises(InvalidOption, match="more than 500"):
        echo.apply_async((1,), correlation_key="k" * 10_000)


def test_handle_get_and_ready(gendurable_app):
    handle = echo.delay(5)
    assert not handle.ready()

    gendurable_app.drain()

    assert handle.ready()
    assert handle.get(timeout=0) == 5
