"""Cron schedules across daylight saving time changes, with a fake clock.

The clock steps every minute through the early-morning hours that contain the change, and
every ten minutes through the rest of the local day, starting the evening before. Expected
fire times are written out in local time with their UTC offsets:

- a fixed time skipped by the spring change (02:30) fires once, at 03:00 the moment the gap
  ends, and a fixed time in the repeated autumn hour fires once, at its first occurrence;
- an hourly schedule follows real time: 23 fires on the spring day, 25 on the autumn day.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from gendurable.schedules import crontab

from .test_beat_schedule_support import (
    FakeClock,
    scheduler,
    tick_job,
    tick_rows,
)

FINE_HOURS = (0, 5)  # local hours stepped minute by minute: the change lies inside


def entries(zone: str) -> dict[str, dict]:
    return {
        "daily": {"task": tick_job, "schedule": crontab(minute=0, hour=9, timezone=zone)},
        "at-0130": {"task": tick_job, "schedule": crontab(minute=30, hour=1, timezone=zone)},
        "at-0230": {"task": tick_job, "schedule": crontab(minute=30, hour=2, timezone=zone)},
        "hourly": {"task": tick_job, "schedule": crontab(minute=0, timezone=zone)},
    }


def run_day(make_app, zone_name: str, day: date):
    """Step a beat through one local day; return the (pass time, tick) of each fire by schedule."""
    zone = ZoneInfo(zone_name)
    midnight = datetime.combine(day, time(0), zone).astimezone(UTC)
    next_midnight = datetime.combine(day + timedelta(days=1), time(0), zone).astimezone(UTC)
    fine_from = datetime.combine(day, time(FINE_HOURS[0]), zone).astimezone(UTC)
    fine_until = datetime.combine(day, time(FINE_HOURS[1]), zone).astimezone(UTC)
    schedules = entries(zone_name)
    clock = FakeClock(midnight - timedelta(hours=2))
    beat = scheduler(make_app(beat_schedule=schedules), clock, *schedules)
    assert beat.run_once() == []

    fired: dict[str, list[tuple[datetime, datetime]]] = {name: [] for name in schedules}
    while clock.now < next_midnight + timedelta(hours=1):
        fine = fine_from <= clock.now < fine_until
        clock.advance(timedelta(minutes=1 if fine else 10))
        for item in beat.run_once():
            assert item.inserted
            fired[item.schedule].append((clock.now, item.tick))
    return fired


def local_times(fired, zone_name: str, day: date) -> list[str]:
    """Return the fire times that fall on ``day`` in the zone, as local ISO times."""
    zone = ZoneInfo(zone_name)
    local = [tick.astimezone(zone) for _, tick in fired]
    return [moment.isoformat() for moment in local if moment.date() == day]


def local_hours(fired, zone_name: str, day: date) -> list[str]:
    """Return the local hour and UTC offset of each fire on ``day``, such as '01-04:00'."""
    zone = ZoneInfo(zone_name)
    local = [tick.astimezone(zone) for _, tick in fired]
    return [moment.strftime("%H%z") for moment in local if moment.date() == day]


def per_local_day(fired, zone_name: str) -> Counter[date]:
    zone = ZoneInfo(zone_name)
    return Counter(tick.astimezone(zone).date() for _, tick in fired)


def hours(offset_by_hour: list[tuple[int, str]]) -> list[str]:
    return [f"{hour:02d}{offset}" for hour, offset in offset_by_hour]


NEW_YORK = "America/New_York"
PARIS = "Europe/Paris"

CASES = [
    pytest.param(
        NEW_YORK, date(2026, 3, 8),
        {
            "daily": ["2026-03-08T09:00:00-04:00"],
            "at-0130": ["2026-03-08T01:30:00-05:00"],
            # 02:30 does not exist: 02:00 EST became 03:00 EDT.
            "at-0230": ["2026-03-08T03:00:00-04:00"],
        },
        hours([(0, "-0500"), (1, "-0500")] + [(h, "-0400") for h in range(3, 24)]),
        id="new-york-spring",
    ),
    pytest.param(
        NEW_YORK, date(2026, 11, 1),
        {
            "daily": ["2026-11-01T09:00:00-05:00"],
            # 01:30 happens twice, in EDT then in EST: only the first fires.
            "at-0130": ["2026-11-01T01:30:00-04:00"],
            "at-0230": ["2026-11-01T02:30:00-05:00"],
        },
        hours([(0, "-0400"), (1, "-0400"), (1, "-0500")] + [(h, "-0500") for h in range(2, 24)]),
        id="new-york-autumn",
    ),
    pytest.param(
        PARIS, date(2026, 3, 29),
        {
            "daily": ["2026-03-29T09:00:00+02:00"],
            "at-0130": ["2026-03-29T01:30:00+01:00"],
            # 02:30 does not exist: 02:00 CET became 03:00 CEST.
            "at-0230": ["2026-03-29T03:00:00+02:00"],
        },
        hours([(0, "+0100"), (1, "+0100")] + [(h, "+0200") for h in range(3, 24)]),
        id="paris-spring",
    ),
    pytest.param(
        PARIS, date(2026, 10, 25),
        {
            "daily": ["2026-10-25T09:00:00+01:00"],
            "at-0130": ["2026-10-25T01:30:00+02:00"],
            # 02:30 happens twice, in CEST then in CET: only the first fires.
            "at-0230": ["2026-10-25T02:30:00+02:00"],
        },
        hours([(0, "+0200"), (1, "+0200"), (2, "+0200"), (2, "+0100")]
              + [(h, "+0100") for h in range(3, 24)]),
        id="paris-autumn",
    ),
]


@pytest.mark.parametrize(("zone", "day", "fixed", "hourly"), CASES)
def test_cron_across_dst_change(db, make_app, zone, day, fixed, hourly):
    fired = run_day(make_app, zone, day)

    for name, expected in fixed.items():
        assert local_times(fired[name], zone, day) == expected, name
        assert per_local_day(fired[name], zone)[day] == 1, name
    assert local_hours(fired["hourly"], zone, day) == hourly
    assert per_local_day(fired["hourly"], zone)[day] == (23 if day.month == 3 else 25)

    for name, fires in fired.items():
        # No tick fires before its time, and in the minute-by-minute hours none fires late.
        assert all(passed >= tick for passed, tick in fires), name
        early_morning = [
            (passed, tick) for passed, tick in fires
            if tick.astimezone(ZoneInfo(zone)).date() == day
            and tick.astimezone(ZoneInfo(zone)).hour < FINE_HOURS[1]
        ]
        assert all(passed == tick for passed, tick in early_morning), name
        assert [row["tick"] for row in tick_rows(db, name)] == [t for _, t in fires]


def test_restart_in_repeated_hour(db, make_app):
    # A beat restarted during the second 01:xx hour must not fire 01:30 again.
    zone = ZoneInfo(NEW_YORK)
    schedule = {"at-0130": entries(NEW_YORK)["at-0130"]}
    clock = FakeClock(datetime(2026, 11, 1, 1, 0, tzinfo=zone).astimezone(UTC))
    first = scheduler(make_app(beat_schedule=schedule), clock, "at-0130")
    first.run_once()
    clock.set(datetime(2026, 11, 1, 1, 30, tzinfo=zone).astimezone(UTC))
    [fired] = first.run_once()

    clock.set(datetime(2026, 11, 1, 1, 5, tzinfo=zone, fold=1).astimezone(UTC))
    restarted = scheduler(make_app(beat_schedule=schedule), clock, "at-0130")
    for _ in range(60):
        clock.advance(timedelta(minutes=1))
        assert restarted.run_once() == []

    assert fired.tick.astimezone(zone).isoformat() == "2026-11-01T01:30:00-04:00"
    assert [row["tick"] for row in tick_rows(db, "at-0130")] == [fired.tick]
