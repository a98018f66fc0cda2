"""What operators see of schedules: ``gendurable status`` and the beat's start-up lines."""

from __future__ import annotations

import importlib
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from gendurable.cli import main
from gendurable.schedules import crontab

from .test_beat_schedule_support import (
    FakeClock,
    scheduler,
    tick_job,
)

# The app module of the command-line tests: an App that reads GENDURABLE_DATABASE_URL.
CLI_APP = f"{__package__}.cli_app"
ROOT = Path(__file__).parents[len(__package__.split("."))]
START = datetime(2030, 9, 2, 10, 0, tzinfo=UTC)
ENTRIES = {
    "every-minute": {"task": tick_job, "schedule": 60},
    "nightly": {"task": tick_job, "schedule": crontab(minute=15, hour=2, timezone="Asia/Tokyo")},
}


@pytest.fixture
def status(gendurable_app, gendurable_database_url, monkeypatch):
    """Run ``gendurable status`` in this process against the test database; return its output."""
    monkeypatch.setenv("GENDURABLE_DATABASE_URL", gendurable_database_url)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir(ROOT)
    sys.modules.pop(CLI_APP, None)
    importlib.import_module(CLI_APP)
    gendurable_app.set_current()

    def run() -> str:
        arguments = ["status", "-A", f"{CLI_APP}:app"]
        result = CliRunner().invoke(main, arguments, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    yield run
    sys.modules[CLI_APP].app.close()
    sys.modules.pop(CLI_APP, None)


def schedule_lines(output: str) -> dict[str, list[str]]:
    """Return the rows of the schedule table by name: [when..., last tick, next tick]."""
    lines = output.splitlines()
    assert lines[0].split() == ["schedule", "when", "last", "tick", "next", "tick"], output
    rows = {}
    for line in lines[1:]:
        if not line.strip():
            break
        name, *rest = line.split()
        rows[name] = rest
    return rows


def parse_time(text: str) -> datetime | None:
    return None if text == "-" else datetime.fromisoformat(text)


def test_status_lists_schedules(db, make_app, status):
    clock = FakeClock(START)
    beat = scheduler(make_app(beat_schedule=ENTRIES), clock, *ENTRIES)
    beat.run_once()

    rows = schedule_lines(status())
    assert rows["every-minute"][:3] == ["every", "60", "s"]
    assert parse_time(rows["every-minute"][-2]) is None
    assert parse_time(rows["every-minute"][-1]) == START + timedelta(minutes=1)
    assert rows["nightly"][:7] == ["cron", "15", "2", "*", "*", "*", "Asia/Tokyo"]
    assert parse_time(rows["nightly"][-2]) is None
    # 02:15 in Tokyo is 17:15 UTC the day before.
    assert parse_time(rows["nightly"][-1]) == datetime(2030, 9, 2, 17, 15, tzinfo=UTC)

    clock.advance(timedelta(minutes=2, seconds=30))
    beat.run_once()

    rows = schedule_lines(status())
    assert parse_time(rows["every-minute"][-2]) == START + timedelta(minutes=2)
    assert parse_time(rows["every-minute"][-1]) == START + timedelta(minutes=3)
    assert parse_time(rows["nightly"][-2]) is None


def test_status_without_schedules(db, status):
    output = status()

    assert "schedule" not in output
    assert "no instances" in output


def test_describe_gives_next_fire_times(db, make_app):
    clock = FakeClock(START)
    beat = scheduler(make_app(beat_schedule=ENTRIES), clock, *ENTRIES)

    # describe() registers the schedules as a first pass would, and fires nothing.
    assert beat.describe() == [
        "every-minute (every 60 s, misfire latest): next at 2030-09-02T10:01:00+00:00",
        "nightly (cron 15 2 * * * Asia/Tokyo, misfire latest): next at 2030-09-02T17:15:00+00:00",
    ]
    assert beat.run_once() == []

    clock.advance(timedelta(minutes=1))
    beat.run_once()
    assert beat.describe()[0] == (
        "every-minute (every 60 s, misfire latest): next at 2030-09-02T10:02:00+00:00"
    )
