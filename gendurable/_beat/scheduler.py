"""The scheduler: fires periodic schedules and wakes workers for rows that became due.

Guarantee: each (schedule, tick) inserts at most one instance however many beats run, because
claiming the tick and inserting the instance is one statement guarded by the primary key of
``gen_durable_ticks``; a beat whose connection drops mid-tick either committed both or
neither, and the next pass (of any beat) fires what is still due. Due times are read on the
database clock, never the host's. Not guaranteed: a tick fires at the exact second; it fires
on the first pass at or after it (passes run every ``beat_interval``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pydantic

from .. import _registry, telemetry
from .._insert import Insert
from .._store import _params
from ..errors import GendurableError, InvalidOption, UnknownJob
from ..schedules import Schedule, from_celery
from ..sql import query

if TYPE_CHECKING:
    from ..app import App

logger = logging.getLogger("gendurable.beat")

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Fired:
    schedule: str
    tick: datetime
    inserted: bool
    instance_id: int | None


def collect(app: App) -> list[Schedule]:
    """Return the app's schedules: those declared on jobs and FSMs, and those in beat_schedule."""
    found: dict[str, Schedule] = {}
    for definition in _registry.registered().values():
        if definition.schedule is not None:
            found[definition.schedule.name] = definition.schedule
    for name, entry in (app.beat_schedule or {}).items():
        found[name] = from_celery(name, entry, app.settings.timezone)
    return [found[name] for name in sorted(found)]


def build_insert(app: App, schedule: Schedule) -> Insert:
    """Build the instance one tick of ``schedule`` starts."""
    from ..fsm import _FSMDefinition
    from ..job import DurableJob

    definition = _registry.resolve(schedule.target, app.include)
    if isinstance(definition, DurableJob):
        return definition._build(schedule.args, schedule.kwargs, dict(schedule.options))
    if isinstance(definition, _FSMDefinition):
        state = definition.state_model(**schedule.kwargs)
        return definition.cls.new(state, **schedule.options)
    raise UnknownJob(
        f"schedule {schedule.name!r} names {schedule.target!r}, which is not startable"
    )


def _validation_summary(exc: pydantic.ValidationError) -> str:
    """Return pydantic's errors on one line, such as ``customer: Field required (got {})``."""
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or 'state'}: {error['msg']} "
        f"(got {error.get('input')!r})"
        for error in exc.errors()
    )


class Scheduler:
    """One pass at a time: call ``run_once()``; ``Beat`` calls it every ``beat_interval``."""

    def __init__(self, app: App, clock: Clock | None = None) -> None:
        self.app = app
        self.schedules = collect(app)
        self._clock = clock
        self._registered = False
        self._woken_until: datetime | None = None

    def now(self, conn: Any) -> datetime:
        if self._clock is not None:
            return self._clock()
        row = conn.execute(query("clock_now")).fetchone()
        return row[0]  # type: ignore[no-any-return]

    def register(self, conn: Any, now: datetime) -> None:
        """Record the schedules; a new one counts its ticks from ``now``."""
        for schedule in self.schedules:
            try:
                insert = build_insert(self.app, schedule)
                # app.insert checks the queue of every other insert; a tick would otherwise
                # start instances in a queue that no worker serves.
                self.app.check_queue(insert.queue)
            except (GendurableError, TypeError, pydantic.ValidationError) as exc:
                reason = (
                    _validation_summary(exc) if isinstance(exc, pydantic.ValidationError) else exc
                )
                raise InvalidOption(
                    f"schedule {schedule.name!r} cannot start its target: {reason}"
                ) from exc
            conn.execute(
                query("schedule_register"),
                {"name": schedule.name, "spec": schedule.spec, "now": now},
            )
        self._registered = True

    def run_once(self) -> list[Fired]:
        """Fire what is due now, wake workers for rows that became due; return the ticks fired."""
        fired: list[Fired] = []
        wake: set[str] = set()
        with self.app.pool.connection() as conn:
            now = self.now(conn)
            if not self._registered:
                self.register(conn, now)
            state = {row[0]: row for row in conn.execute(query("schedule_list")).fetchall()}
            next_ticks: dict[str, datetime] = {}
            for schedule in self.schedules:
                _, _, registered_at, last_tick, _, _ = state[schedule.name]
                after = max(registered_at, last_tick) if last_tick else registered_at
                ticks, skip_past = schedule.due(registered_at, after, now)
                if skip_past is not None:
                    conn.execute(
                        query("schedule_skip"), {"schedule": schedule.name, "tick": skip_past}
                    )
                    logger.warning(
                        "schedule %s skipped late ticks up to %s (misfire policy skip)",
                        schedule.name,
                        skip_past.isoformat(),
                    )
                for tick in ticks:
                    fired.append(self._fire(conn, schedule, tick, wake))
                latest = max([after, *ticks] + ([skip_past] if skip_past else []))
                next_ticks[schedule.name] = schedule.next_tick(registered_at, max(latest, now))
            if next_ticks:
                conn.execute(
                    query("schedule_set_next"),
                    {"names": list(next_ticks), "next_ticks": list(next_ticks.values())},
                )
            wake.update(self._due_queues(conn, now))
        # Wakeups go out once the connection is back in the pool: the NOTIFY publisher takes a
        # connection of its own, which a pool of one could not give while this pass held one.
        if wake:
            self.app.wake(wake)
        return fired

    def _fire(self, conn: Any, schedule: Schedule, tick: datetime, wake: set[str]) -> Fired:
        """Claim ``tick`` and insert its instance unless another beat did.

        Adds the instance's queue to ``wake``, the queues to wake once the pass ends.
        """
        insert = build_insert(self.app, schedule)
        params = _params.insert_one(insert) | {"schedule": schedule.name, "tick": tick}
        row = conn.execute(query("schedule_fire"), params).fetchone()
        inserted = bool(row and row[0])
        instance_id = row[1] if row else None
        telemetry.execute(
            "beat.fired",
            {"count": 1 if inserted else 0},
            {
                "schedule": schedule.name,
                "tick": tick,
                "inserted": inserted,
                "instance_id": instance_id,
                "queue": insert.queue,
            },
        )
        if instance_id is not None:
            wake.add(insert.queue)
        return Fired(schedule.name, tick, inserted, instance_id)

    def _due_queues(self, conn: Any, now: datetime) -> list[str]:
        """Return the queues whose scheduled rows became due since the last pass.

        The first pass looks back without limit: rows that became due while no beat ran got
        no wakeup from their insert, which notifies only rows due at once.
        """
        since = self._woken_until or datetime.min.replace(tzinfo=UTC)
        self._woken_until = now
        queues = sorted(self.app.known_queues())
        rows = conn.execute(
            query("queue_due_since"), {"queues": queues, "since": since, "until": now}
        ).fetchall()
        return [row[0] for row in rows]

    def describe(self) -> list[str]:
        """Return one line per schedule with its next fire time, for the start-up log."""
        lines = []
        with self.app.pool.connection() as conn:
            now = self.now(conn)
            if not self._registered:
                self.register(conn, now)
            state = {row[0]: row for row in conn.execute(query("schedule_list")).fetchall()}
        for schedule in self.schedules:
            _, _, registered_at, last_tick, _, _ = state[schedule.name]
            after = max(now, last_tick or registered_at)
            lines.append(
                f"{schedule.name} ({schedule.spec}, misfire {schedule.misfire}): next at "
                f"{schedule.next_tick(registered_at, after).isoformat()}"
            )
        return lines
