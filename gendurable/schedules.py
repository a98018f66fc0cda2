"""Periodic schedules: cron expressions in a time zone, and fixed intervals.

Cron expressions are evaluated by cronsim, which follows Debian cron, DST quirks included:

- A job at a fixed wall-clock time (a specific minute and hour, such as ``30 2 * * *``) whose
  time is skipped by the spring-forward change runs at the first valid minute after the gap
  (03:00 in America/New_York). In the repeated autumn hour it runs once, at the first
  occurrence.
- A job whose hour field is ``*`` or a step (``0 * * * *``, ``*/15 * * * *``) follows real
  time: the skipped hour has no ticks (23 hourly ticks on spring-forward day) and the repeated
  hour has its ticks twice (25 on the autumn day).

Intervals tick at the moment the schedule was first registered plus whole multiples of the
interval. Neither kind fires a tick at or before the registration, so adding a schedule or
restarting a beat never fires early.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from .errors import InvalidOption, closest

Misfire = Literal["skip", "latest", "all"]
MISFIRE_POLICIES = ("skip", "latest", "all")


@dataclasses.dataclass(frozen=True)
class crontab:
    """A cron schedule in Celery's spelling: ``crontab(minute=0, hour=3)``."""

    minute: Any = "*"
    hour: Any = "*"
    day_of_week: Any = "*"
    day_of_month: Any = "*"
    month_of_year: Any = "*"
    timezone: str | None = None

    @property
    def expression(self) -> str:
        """The cron expression; with both day fields restricted, the weekdays go to ``weekdays``.

        Cron runs a job when either day field matches, Celery only when both do, so the
        weekday field is then checked separately, the way Celery does.
        """
        dow = self._day_of_week
        if self._both_days:
            dow = "*"
        return (
            f"{_field(self.minute)} {_field(self.hour)} {_field(self.day_of_month)} "
            f"{_field(self.month_of_year)} {dow}"
        )

    @property
    def weekdays(self) -> str | None:
        """The day-of-week field to require as well, when both day fields are restricted."""
        return self._day_of_week if self._both_days else None

    @property
    def _day_of_week(self) -> str:
        text = _field(self.day_of_week).lower()
        for name, short in _DAY_NAMES.items():
            text = text.replace(name, short)
        return text

    @property
    def _both_days(self) -> bool:
        return _field(self.day_of_month) != "*" and self._day_of_week != "*"


_DAY_NAMES = {
    "sunday": "sun", "monday": "mon", "tuesday": "tue", "wednesday": "wed",
    "thursday": "thu", "friday": "fri", "saturday": "sat",
}  # fmt: skip


def _field(value: Any) -> str:
    """Spell a crontab field as cron does: a list or set of values joins with commas."""
    if isinstance(value, list | tuple | set | frozenset | range):
        items = sorted(value) if isinstance(value, set | frozenset) else list(value)
        return ",".join(str(item) for item in items)
    return str(value)


@dataclasses.dataclass(frozen=True)
class Schedule:
    """When a job or FSM starts by itself, and with what.

    ``misfire`` sets what a beat does when it finds ticks more than ``misfire_grace`` seconds
    late (the beats were down): ``latest`` fires only the most recent due tick, ``skip``
    fires none of the late ones, ``all`` fires every due tick, at most ``misfire_limit`` (the
    most recent ones). When no due tick is late, every one of them fires.
    """

    name: str
    target: str
    cron: str | None = None
    timezone: str = "UTC"
    every: float | None = None
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    misfire: Misfire = "latest"
    misfire_grace: float = 60.0
    misfire_limit: int = 100
    # A day-of-week field every tick must match too (Celery's crontab with both day fields).
    weekdays: str | None = None

    def __post_init__(self) -> None:
        if (self.cron is None) == (self.every is None):
            raise InvalidOption(
                f"schedule {self.name!r} needs exactly one of cron and every, got "
                f"cron={self.cron!r}, every={self.every!r}"
            )
        if self.misfire not in MISFIRE_POLICIES:
            raise InvalidOption(
                f"misfire policy of schedule {self.name!r} must be one of "
                f"{', '.join(MISFIRE_POLICIES)}, got {self.misfire!r}"
                + closest(str(self.misfire), MISFIRE_POLICIES)
            )
        if not isinstance(self.misfire_limit, int) or self.misfire_limit < 1:
            raise InvalidOption(
                f"misfire_limit of schedule {self.name!r} must be at least 1, got {self.misfire_limit!r}"
            )
        if self.every is not None and not self.every > 0:
            raise InvalidOption(
                f"interval of schedule {self.name!r} must be more than 0 seconds, got {self.every!r}"
            )
        zone = self.zone
        if self.cron is not None:
            try:
                if len(self.cron.split()) != 5:
                    raise CronSimError("expected five fields")
                CronSim(self.cron, datetime(2000, 1, 1, tzinfo=zone))
                if self.weekdays is not None:
                    self._weekday_set()
            except CronSimError as exc:
                raise InvalidOption(
                    f"invalid cron expression {self.cron!r} for schedule {self.name!r}: {exc}; "
                    "write five fields: minute hour day-of-month month day-of-week"
                ) from None

    def _weekday_set(self) -> frozenset[int]:
        """Parse ``weekdays`` into cron's numbers, Sunday as 0."""
        parsed = CronSim(f"0 0 * * {self.weekdays}", datetime(2000, 1, 1)).weekdays
        if not all(isinstance(day, int) for day in parsed):
            raise CronSimError(
                f"day_of_week {self.weekdays!r} cannot be combined with day_of_month"
            )
        return frozenset(day % 7 for day in parsed)  # type: ignore[operator]

    @property
    def zone(self) -> ZoneInfo:
        try:
            return ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidOption(
                f"unknown time zone {self.timezone!r} for schedule {self.name!r}; use an IANA "
                "name such as 'Europe/Paris' or 'UTC'"
            ) from None

    @property
    def spec(self) -> str:
        """Describe when it fires, as stored and shown by ``gendurable status``."""
        if self.cron is not None:
            return f"cron {self.cron} {self.timezone}"
        return f"every {self.every:g} s"

    def ticks(self, anchor: datetime, after: datetime) -> Iterator[datetime]:
        """Yield this schedule's ticks strictly after ``after``, in UTC, in order.

        ``anchor`` is when the schedule was registered: intervals count from it.
        """
        if self.every is not None:
            step = timedelta(seconds=self.every)
            elapsed = max((after - anchor) / step, 0.0)
            count = int(elapsed) + 1
            while True:
                tick = anchor + step * count
                if tick > after:
                    yield tick.astimezone(UTC)
                count += 1
        else:
            assert self.cron is not None
            start = after.astimezone(self.zone)
            weekdays = None if self.weekdays is None else self._weekday_set()
            for tick in CronSim(self.cron, start):
                if weekdays is not None and tick.isoweekday() % 7 not in weekdays:
                    continue
                if tick.astimezone(UTC) > after:
                    yield tick.astimezone(UTC)

    def due(
        self, anchor: datetime, after: datetime, now: datetime
    ) -> tuple[list[datetime], datetime | None]:
        """Split the ticks in (after, now] into those to fire and the latest one to skip past.

        Returns (ticks to fire in order, the tick to record as passed without firing or None).
        """
        due: list[datetime] = []
        for tick in self.ticks(anchor, after):
            if tick > now:
                break
            due.append(tick)
            if len(due) > 100_000:
                # A tiny interval after a long outage: only the latest ones can matter.
                due = due[-self.misfire_limit :]
        if not due:
            return [], None
        late = [tick for tick in due if (now - tick).total_seconds() > self.misfire_grace]
        on_time = due[len(late) :]
        if self.misfire == "latest":
            # Without a late tick nothing was missed: a pass that runs a little behind (two
            # ticks of a short interval due at once) fires each of them.
            return ([due[-1]] if late else due), None
        if self.misfire == "all":
            return due[-self.misfire_limit :], None
        return on_time, (late[-1] if late else None)

    def next_tick(self, anchor: datetime, after: datetime) -> datetime:
        return next(self.ticks(anchor, after))


def from_celery(name: str, entry: dict[str, Any], default_timezone: str) -> Schedule:
    """Build a Schedule from one entry of a Celery-style ``beat_schedule``."""
    known = {
        "task",
        "schedule",
        "args",
        "kwargs",
        "options",
        "misfire",
        "misfire_grace",
        "misfire_limit",
        "relative",
    }
    for key in entry:
        if key not in known:
            raise InvalidOption(
                f"unknown key {key!r} in beat_schedule entry {name!r}" + closest(key, known)
            )
    if "task" not in entry or "schedule" not in entry:
        raise InvalidOption(f"beat_schedule entry {name!r} needs 'task' and 'schedule'")
    task = entry["task"]
    target = task if isinstance(task, str) else getattr(task, "name", None)
    if not isinstance(target, str):
        raise InvalidOption(
            f"task of beat_schedule entry {name!r} must be a job name or a job, got {task!r}"
        )
    when = entry["schedule"]
    cron = None
    weekdays = None
    every = None
    timezone = default_timezone
    if isinstance(when, crontab):
        cron = when.expression
        weekdays = when.weekdays
        timezone = when.timezone or default_timezone
    elif isinstance(when, timedelta):
        every = when.total_seconds()
    elif isinstance(when, int | float) and not isinstance(when, bool):
        every = float(when)
    else:
        raise InvalidOption(
            f"schedule of beat_schedule entry {name!r} must be a crontab, a timedelta or "
            f"seconds, got {when!r}"
        )
    optional: dict[str, Any] = {
        key: entry[key] for key in ("misfire", "misfire_grace", "misfire_limit") if key in entry
    }
    return Schedule(
        name=name,
        target=target,
        cron=cron,
        weekdays=weekdays,
        every=every,
        timezone=timezone,
        args=tuple(entry.get("args") or ()),
        kwargs=dict(entry.get("kwargs") or {}),
        options=dict(entry.get("options") or {}),
        **optional,
    )
