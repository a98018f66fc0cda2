"""Declaring periodic schedules on jobs, on FSM classes and in ``App(beat_schedule=...)``,
and the errors for schedules that cannot work.

Jobs and FSMs with a schedule are declared inside the tests, and ``restore_registry``
removes them from the registry afterwards, so that no other test's beat fires them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pydantic
import pytest

from gendurable import FSM, Done, durable_job, step
from gendurable._beat.scheduler import Scheduler, collect
from gendurable.errors import GendurableError, InvalidOption
from gendurable.schedules import Schedule, crontab

from .helpers import get_row
from .test_beat_schedule_support import (
    FakeClock,
    inserted_ticks,
    instance_ids,
    restore_registry,  # noqa: F401 - a fixture
    schedule_row,
    scheduler,
    tick_job,
)

START = datetime(2030, 6, 3, 0, 0, tzinfo=UTC)
PARIS = ZoneInfo("Europe/Paris")


def run_until(beat, clock, moment, step=timedelta(minutes=10)):
    """Step the clock up to ``moment``; return every fire on the way."""
    fired = []
    while clock.now < moment:
        clock.advance(step)
        fired += beat.run_once()
    return fired


# Declaring.


def test_job_cron_in_time_zone(db, gendurable_app, restore_registry):
    @durable_job(cron="0 3 * * *", timezone="Europe/Paris")
    def nightly(limit: int = 10) -> int:
        return limit

    assert nightly.schedule == Schedule(
        name=nightly.name, target=nightly.name, cron="0 3 * * *", timezone="Europe/Paris"
    )
    assert nightly.name in {schedule.name for schedule in collect(gendurable_app)}
    clock = FakeClock(START)
    beat = scheduler(gendurable_app, clock, nightly.name)
    beat.run_once()

    fired = run_until(beat, clock, START + timedelta(days=2))

    assert inserted_ticks(fired) == [
        datetime(2030, 6, 3, 3, 0, tzinfo=PARIS), datetime(2030, 6, 4, 3, 0, tzinfo=PARIS)
    ]
    [first, _] = instance_ids(db, nightly.name)
    assert gendurable_app.drain() == {"done": 2}
    assert gendurable_app.handle(first).result(timeout=0) == 10


@pytest.mark.parametrize("every", [90, 90.0, timedelta(seconds=90)])
def test_job_every_interval(db, gendurable_app, restore_registry, every):
    @durable_job(every=every)
    def heartbeat() -> str:
        return "alive"

    assert heartbeat.schedule.every == 90.0
    assert heartbeat.schedule.misfire == "latest"
    clock = FakeClock(START)
    beat = scheduler(gendurable_app, clock, heartbeat.name)
    beat.run_once()

    fired = run_until(beat, clock, START + timedelta(minutes=5), timedelta(minutes=1))

    assert inserted_ticks(fired) == [START + timedelta(seconds=90 * n) for n in (1, 2, 3)]
    assert len(instance_ids(db, heartbeat.name)) == 3


def test_job_misfire_option(gendurable_app, restore_registry):
    @durable_job(every=60, misfire="skip")
    def sampled() -> None:
        pass

    assert sampled.schedule.misfire == "skip"


class Report(pydantic.BaseModel):
    region: str = "eu"
    days: int = 7


def test_fsm_cron_with_schedule_state(db, gendurable_app, restore_registry):
    class WeeklyReport(FSM):
        cron = "0 6 * * mon"
        timezone = "Europe/Paris"
        schedule_state = {"region": "us"}
        State = Report

        @step(initial=True)
        def build(self, state, ctx):
            return Done(f"{state.region}/{state.days}")

    name = WeeklyReport._definition.name
    clock = FakeClock(START)  # a Monday, at 02:00 in Paris
    beat = scheduler(gendurable_app, clock, name)
    beat.run_once()

    fired = run_until(beat, clock, START + timedelta(days=8), timedelta(minutes=30))

    assert inserted_ticks(fired) == [
        datetime(2030, 6, 3, 6, 0, tzinfo=PARIS), datetime(2030, 6, 10, 6, 0, tzinfo=PARIS)
    ]
    [first, _] = instance_ids(db, name)
    assert get_row(db, first)["state"] == {"region": "us", "days": 7}
    assert gendurable_app.drain() == {"done": 2}
    assert gendurable_app.handle(first).result(timeout=0) == "us/7"


def test_fsm_every_with_state_defaults(db, gendurable_app, restore_registry):
    class Sweep(FSM):
        every = timedelta(hours=1)
        misfire = "all"
        State = Report

        @step(initial=True)
        def run(self, state, ctx):
            return Done(state.region)

    name = Sweep._definition.name
    assert Sweep._definition.schedule.every == 3600.0
    assert Sweep._definition.schedule.misfire == "all"
    clock = FakeClock(START)
    beat = scheduler(gendurable_app, clock, name)
    beat.run_once()
    clock.advance(timedelta(hours=2))

    assert inserted_ticks(beat.run_once()) == [
        START + timedelta(hours=1), START + timedelta(hours=2)
    ]
    [first, _] = instance_ids(db, name)
    assert get_row(db, first)["state"] == {"region": "eu", "days": 7}


def test_celery_beat_schedule_format(db, make_app):
    app = make_app(
        queues={"reports": 2},
        timezone="Europe/Paris",
        beat_schedule={
            "by-name-crontab": {
                "task": tick_job.name,
                "schedule": crontab(minute=30, hour=4),
                "args": ("crontab",),
            },
            "by-job-timedelta": {
                "task": tick_job,
                "schedule": timedelta(hours=2),
                "kwargs": {"label": "timedelta"},
                "options": {"queue": "reports", "priority": 3},
            },
            "seconds": {"task": tick_job, "schedule": 3600, "kwargs": {"label": "seconds"}},
            "float-seconds": {"task": tick_job, "schedule": 5400.0},
            "crontab-own-zone": {
                "task": tick_job,
                "schedule": crontab(minute=0, hour=4, timezone="America/New_York"),
            },
        },
    )
    schedules = {schedule.name: schedule for schedule in collect(app)}
    assert schedules["by-name-crontab"].cron == "30 4 * * *"
    assert schedules["by-name-crontab"].timezone == "Europe/Paris"
    assert schedules["crontab-own-zone"].timezone == "America/New_York"
    assert schedules["by-job-timedelta"].every == 7200.0
    assert schedules["seconds"].every == 3600.0
    assert schedules["float-seconds"].every == 5400.0
    clock = FakeClock(START)
    beat = scheduler(app, clock, *app.beat_schedule)
    beat.run_once()

    fired = run_until(beat, clock, START + timedelta(hours=12))

    ticks = {}
    for item in fired:
        ticks.setdefault(item.schedule, []).append(item.tick)
    assert ticks["by-name-crontab"] == [datetime(2030, 6, 3, 4, 30, tzinfo=PARIS)]
    assert ticks["crontab-own-zone"] == [
        datetime(2030, 6, 3, 4, 0, tzinfo=ZoneInfo("America/New_York"))
    ]
    assert ticks["by-job-timedelta"] == [START + timedelta(hours=h) for h in range(2, 13, 2)]
    assert ticks["seconds"] == [START + timedelta(hours=h) for h in range(1, 13)]
    assert ticks["float-seconds"] == [START + timedelta(minutes=90 * n) for n in range(1, 9)]
    rows = {item.schedule: get_row(db, item.instance_id) for item in fired}
    assert rows["by-name-crontab"]["state"]["args"] == {"label": "crontab"}
    assert rows["by-job-timedelta"]["state"]["args"] == {"label": "timedelta"}
    assert rows["by-job-timedelta"]["queue"] == "reports"
    assert rows["by-job-timedelta"]["priority"] == 3
    assert rows["seconds"]["queue"] == "default"
    assert rows["seconds"]["priority"] == 0
    assert rows["seconds"]["state"]["args"] == {"label": "seconds"}
    assert schedule_row(db, "by-name-crontab")["spec"] == "cron 30 4 * * * Europe/Paris"
    assert schedule_row(db, "seconds")["spec"] == "every 3600 s"


def test_celery_crontab_weekday_names(make_app, db):
    app = make_app(beat_schedule={
        "weekdays": {
            "task": tick_job, "schedule": crontab(minute=0, hour=7, day_of_week="mon-fri")
        },
    })
    clock = FakeClock(START)  # Monday 3 June 2030
    beat = scheduler(app, clock, "weekdays")
    beat.run_once()

    fired = run_until(beat, clock, START + timedelta(days=7), timedelta(minutes=30))

    assert [tick.date().isoformat() for tick in inserted_ticks(fired)] == [
        "2030-06-03", "2030-06-04", "2030-06-05", "2030-06-06", "2030-06-07"
    ]


# Errors: each names the offending value.


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"cron": "61 * * * *"}, "invalid cron expression '61 * * * *'"),
        ({"cron": "0 3 * *"}, "invalid cron expression '0 3 * *'"),
        ({"cron": "every day"}, "invalid cron expression 'every day'"),
        ({"cron": "0 3 * * *", "timezone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
        ({"cron": "0 3 * * *", "timezone": "CEST"}, "unknown time zone 'CEST'"),
        ({"every": 60, "misfire": "lastest"}, "got 'lastest' (did you mean 'latest'?)"),
        ({"every": 60, "misfire": None}, "got None"),
        ({"every": 0}, "got 0"),
        ({"every": -5}, "got -5"),
        ({"every": timedelta(0)}, "got datetime.timedelta(0)"),
        ({"every": "hourly"}, "got 'hourly'"),
        ({"cron": "0 3 * * *", "every": 60}, "cron='0 3 * * *', every=60"),
    ],
)
def test_job_schedule_errors(restore_registry, options, message):
    with pytest.raises(InvalidOption) as raised:
        @durable_job(**options)
        def periodic() -> None:
            pass

    assert message in str(raised.value)


def test_periodic_job_needs_defaults(restore_registry):
    with pytest.raises(GendurableError) as raised:
        @durable_job(cron="0 3 * * *")
        def cleanup(days: int, dry_run: bool = False) -> None:
            pass

    message = str(raised.value)
    assert "'days'" in message
    assert "default" in message
    # Nothing is inserted at declaration, so the message must not speak of an insert.
    assert "inserted" not in message


def test_fsm_schedule_errors(restore_registry):
    with pytest.raises(InvalidOption, match="invalid cron expression '0 25 \\* \\* \\*'"):
        class BadCron(FSM):
            cron = "0 25 * * *"
            State = Report

            @step(initial=True)
            def go(self, state, ctx):
                return Done()

    with pytest.raises(InvalidOption, match="unknown time zone 'Paris'"):
        class BadZone(FSM):
            cron = "0 3 * * *"
            timezone = "Paris"
            State = Report

            @step(initial=True)
            def go(self, state, ctx):
                return Done()

    with pytest.raises(InvalidOption, match="got 'never'"):
        class BadMisfire(FSM):
            every = 60
            misfire = "never"
            State = Report

            @step(initial=True)
            def go(self, state, ctx):
                return Done()


class Required(pydantic.BaseModel):
    customer: str


def test_periodic_fsm_needs_startable_state(restore_registry):
    # A periodic FSM starts with schedule_state, so a State it cannot build is an error at
    # the class statement, like a periodic job's parameters without defaults.
    with pytest.raises(GendurableError, match="customer"):
        class NoDefaults(FSM):
            cron = "0 3 * * *"
            State = Required

            @step(initial=True)
            def go(self, state, ctx):
                return Done()

    with pytest.raises(GendurableError, match="custmer"):
        class Misspelt(FSM):
            every = 60
            schedule_state = {"custmer": "acme"}
            State = Required

            @step(initial=True)
            def go(self, state, ctx):
                return Done()


def test_beat_rejects_unstartable_fsm_schedule(make_app, restore_registry, db):
    # A beat_schedule entry is checked when beat starts: one it cannot fire is rejected
    # before its first tick, naming it, instead of failing on every tick.
    class Unstartable(FSM):
        State = Required

        @step(initial=True)
        def go(self, state, ctx):
            return Done()

    target = Unstartable._definition.name
    app = make_app(beat_schedule={"nightly": {"task": target, "schedule": 60}})
    beat = scheduler(app, FakeClock(START), "nightly")

    with pytest.raises(InvalidOption) as raised:
        beat.run_once()

    assert str(raised.value) == (
        "schedule 'nightly' cannot start its target: customer: Field required (got {})"
    )


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"task": tick_job, "shedule": 60}, "unknown key 'shedule' in beat_schedule entry 'entry' "
                                            "(did you mean 'schedule'?)"),
        ({"task": tick_job, "schedule": 60, "kwarg": {}}, "unknown key 'kwarg'"),
        ({"schedule": 60}, "beat_schedule entry 'entry' needs 'task' and 'schedule'"),
        ({"task": tick_job}, "beat_schedule entry 'entry' needs 'task' and 'schedule'"),
        ({"task": 42, "schedule": 60}, "got 42"),
        ({"task": tick_job, "schedule": "every minute"}, "got 'every minute'"),
        ({"task": tick_job, "schedule": True}, "got True"),
        ({"task": tick_job, "schedule": 0}, "got 0"),
        ({"task": tick_job, "schedule": timedelta(seconds=-1)}, "got -1"),
        ({"task": tick_job, "schedule": crontab(minute=75)},
         "invalid cron expression '75 * * * *'"),
        ({"task": tick_job, "schedule": crontab(hour=3, timezone="Europe/Pariss")},
         "unknown time zone 'Europe/Pariss'"),
        ({"task": tick_job, "schedule": 60, "misfire": "everything"}, "got 'everything'"),
        ({"task": tick_job, "schedule": 60, "misfire_limit": 0}, "got 0"),
    ],
)
def test_beat_schedule_entry_errors(make_app, entry, message):
    app = make_app(beat_schedule={"entry": entry})

    with pytest.raises(InvalidOption) as raised:
        Scheduler(app)

    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"task": "tests.nowhere.job", "schedule": 60}, "unknown job or FSM 'tests.nowhere.job'"),
        ({"task": tick_job, "schedule": 60, "args": (1, 2)}, "tick_job"),
        ({"task": tick_job, "schedule": 60, "kwargs": {"labels": "x"}}, "labels"),
        ({"task": tick_job, "schedule": 60, "options": {"queue": "reprots"}},
         "unknown queue 'reprots'"),
        ({"task": tick_job, "schedule": 60, "options": {"priorty": 1}},
         "unknown option 'priorty'"),
    ],
)
def test_beat_schedule_target_errors(make_app, db, entry, message):
    # Known only when the target is resolved: at the beat's first pass, before any tick.
    app = make_app(queues={"reports": 1}, beat_schedule={"entry": entry})
    beat = scheduler(app, FakeClock(START), "entry")

    with pytest.raises(InvalidOption) as raised:
        beat.run_once()

    assert "schedule 'entry' cannot start its target" in str(raised.value)
    assert message in str(raised.value)
    assert instance_ids(db, tick_job.name) == []


def test_misfire_limit_must_be_positive():
    with pytest.raises(InvalidOption, match="misfire_limit of schedule 'x' must be at least 1"):
        Schedule(name="x", target="x", every=60, misfire_limit=-1)

