"""A worker process: the feeder applies finished outcomes and picks rows for free slots (one
transaction, one round trip), the executor runs the steps, the lease keeper extends leases and
the listener wakes the feeder.

Guarantees: a row is picked only into a free slot, so nothing is prefetched beyond capacity.
Its outcome is applied only while this worker holds its lease. A crash at any point leaves the
row ``running`` until the lease expires. The reaper then makes it runnable again, and the step
runs again from the last committed state (at-least-once). Not guaranteed: that a step runs
exactly once. Steps must be idempotent.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

from .. import telemetry
from .._store import OutcomeRecord
from .._wakeup.postgres import Listener
from ..status import Status
from . import runner
from .connection import LOST, Reconnecting
from .executor import Executor
from .keeper import LeaseKeeper
from .runner import Attempt

if TYPE_CHECKING:
    from ..app import App

logger = logging.getLogger("gendurable.worker")

# With a backlog, a freed slot waits up to this long for the other slots before the next pick,
# so that short steps are picked in batches and not one round trip each.
BATCH_WINDOW = 0.002
# Outcomes applied per statement at most.
MAX_OUTCOMES = 500


class Worker:
    """Runs the steps of the given queues until stopped (or, with ``burst``, until idle)."""

    def __init__(
        self,
        app: App,
        queues: dict[str, int],
        *,
        burst: bool = False,
        grace: float | None = None,
    ) -> None:
        self.app = app
        self.limits = dict(queues)
        self.burst = burst
        self.grace = app.settings.shutdown_grace if grace is None else grace
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._conninfo = app.database_url
        self._global_limits = {q: app.global_limit(q) for q in self.limits}
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._cond = threading.Condition()
        self._inflight = dict.fromkeys(self.limits, 0)
        self._backlog = dict.fromkeys(self.limits, True)
        self._free_since: dict[str, float] = {}
        self._held: dict[int, Attempt] = {}
        self._woken = True
        self._idle_exit = threading.Event()
        self._outcomes: list[tuple[Attempt, OutcomeRecord]] = []
        self._gave_up = False
        # Rows of the outcome batch the feeder is applying now.
        self._applying: set[int] = set()
        # Per queue, the key of the last row picked while a backlog lasts (see instance_pick).
        self._cursors: dict[str, tuple[int, Any, int]] = {}
        self._outcomes_since = 0.0
        self._executor = Executor(sum(self.limits.values()), self._finished, "gendurable")
        self._keeper = LeaseKeeper(
            app._store,
            self._conninfo,
            self.owner,
            app.settings.lease_timeout,
            self._held_ids,
            self._unsettled_ids,
            self._executor.cancel,
            self._stopped,
        )
        if app.settings.wakeup == "postgres":
            self._listener: threading.Thread = Listener(
                self._conninfo, self.wake, self._executor.cancel, self._stopped
            )
        else:
            from .._wakeup.kombu import KombuListener

            self._listener = KombuListener(
                app.settings.wakeup, self.wake, self._executor.cancel, self._stopped
            )
        self._feeder = threading.Thread(target=self._feed, name="gendurable-feeder", daemon=True)

    # Lifecycle.

    def start(self) -> None:
        self._executor.start()
        self._keeper.start()
        self._listener.start()
        self._feeder.start()
        telemetry.execute(
            "worker.start",
            {},
            {"worker": self.owner, "queues": ",".join(f"{q}={n}" for q, n in self.limits.items())},
        )

    def wait_idle(self, timeout: float | None = None) -> bool:
        """For burst mode: wait until nothing is left to run; return whether that happened."""
        return self._idle_exit.wait(timeout)

    def wait_listening(self, timeout: float = 10.0) -> bool:
        listening: threading.Event = self._listener.listening  # type: ignore[attr-defined]
        return listening.wait(timeout)

    def stop_picking(self) -> None:
        """Pick nothing more; what runs goes on (``stop`` then drains it)."""
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()

    def stop(self, grace: float | None = None) -> None:
        """Drain: stop picking, let running steps finish within ``grace``, release the rest."""
        grace = self.grace if grace is None else grace
        began = time.perf_counter()
        with self._cond:
            running_at_signal = sum(self._inflight.values())
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        deadline = time.monotonic() + grace
        with self._cond:
            self._cond.wait_for(
                lambda: sum(self._inflight.values()) == 0, max(deadline - time.monotonic(), 0)
            )
        abandoned = self._executor.abandon()
        running = len(abandoned)
        with self._cond:
            self._gave_up = True
            self._cond.notify_all()
        # The feeder stops picking but applies what finished, then exits.
        self._feeder.join(timeout=max(deadline - time.monotonic(), 5.0))
        released = self._release([attempt.row.id for attempt in abandoned])
        self._stopped.set()
        self._executor.stop()
        telemetry.execute(
            "worker.drain",
            {"duration_ms": (time.perf_counter() - began) * 1000},
            {
                "worker": self.owner,
                "running": running_at_signal,
                "released": released,
                "abandoned": running,
            },
        )
        telemetry.execute("worker.stop", {}, {"worker": self.owner})

    def _release(self, ids: list[int]) -> int:
        if not ids:
            return 0
        connection = Reconnecting(self._conninfo, "drain", threading.Event())
        try:
            return len(self.app._store.release(connection.get(), self.owner, ids))
        except LOST as exc:
            logger.warning(
                "could not release %d leases while draining (%s); the reaper will "
                "release them when they expire",
                len(ids),
                exc,
            )
            return 0
        finally:
            connection.close()

    # Wakeups.

    def wake(self, queue: str | None = None) -> None:
        """Ask the feeder to pick now (for ``queue``, or for every queue when None)."""
        if queue is not None and queue not in self.limits:
            return
        with self._cond:
            self._woken = True
            self._cond.notify()

    # The feeder.

    def _feed(self) -> None:
        connection = Reconnecting(self._conninfo, "feeder", self._stopped)
        poll_interval = self.app.settings.poll_interval
        next_poll = 0.0
        while True:
            with self._cond:
                stopping = self._stopping.is_set()
                if (
                    stopping
                    and not self._outcomes
                    and (self._gave_up or sum(self._inflight.values()) == 0)
                ):
                    break
                now = time.monotonic()
                poll_due = self._woken or now >= next_poll
                wants, wait = ({}, 0.05) if stopping else self._wanted(now, poll_due, next_poll)
                hold, hold_for = self._hold_outcomes(now, wants, stopping)
                if not wants and (hold or not self._outcomes):
                    self._cond.wait(max(min(wait, hold_for), 0.0))
                    continue
                batch = self._outcomes[:MAX_OUTCOMES]
                del self._outcomes[:MAX_OUTCOMES]
                self._applying = {record.id for _, record in batch}
                if wants:
                    self._woken = False
            try:
                if poll_due:
                    # A wakeup or a poll looks at the whole queue again: rows may have been
                    # inserted, rescheduled or released in front of the cursor.
                    self._cursors.clear()
                statuses, rows = self.app._store.cycle(
                    connection.get(),
                    self.owner,
                    [record for _, record in batch],
                    wants,
                    self._global_limits,
                    self.app.settings.lease_timeout,
                    cursors=self._cursors,
                )
            except LOST as exc:
                with self._cond:
                    self._applying = set()
                    self._outcomes[:0] = batch
                    self._woken = True
                if self._stopped.is_set():
                    logger.warning(
                        "stopping with %d outcomes not applied (database unreachable); their "
                        "leases will expire and the steps will run again",
                        len(self._outcomes),
                    )
                    break
                connection.lost(exc)
                continue
            except Exception:
                # A bug or a schema that does not match this version. Apply the outcomes one
                # by one, so a single bad one cannot hold back the rest, then pick again later.
                logger.exception(
                    "feeder failed to apply outcomes or pick rows; retrying in 1 s (is the "
                    "schema migrated with this version of gendurable?)"
                )
                if batch:
                    self._apply_one_by_one(connection, batch)
                with self._cond:
                    self._woken = True
                if self._stopped.wait(1.0):
                    break
                continue
            if batch:
                self._applied(batch, statuses)
            if wants and poll_due:
                next_poll = time.monotonic() + poll_interval
            if wants:
                self._dispatch(rows, wants)
            if self.burst and wants and poll_due and not rows:
                with self._cond:
                    idle = not self._held and not self._outcomes
                if idle:
                    self._idle_exit.set()
                    self._stopping.set()
        connection.close()

    def _wanted(self, now: float, poll_due: bool, next_poll: float) -> tuple[dict[str, int], float]:
        """Decide which queues to pick for now, or how long to wait (call with the lock held)."""
        wants: dict[str, int] = {}
        wait = next_poll - now
        for queue, limit in self.limits.items():
            free = limit - self._inflight[queue]
            if free <= 0:
                continue
            if poll_due or (self._backlog[queue] and free == limit):
                wants[queue] = free
            elif self._backlog[queue]:
                remaining = self._free_since.get(queue, now) + BATCH_WINDOW - now
                if remaining <= 0:
                    wants[queue] = free
                else:
                    wait = min(wait, remaining)
        return wants, wait

    def _apply_one_by_one(
        self, connection: Reconnecting, batch: list[tuple[Attempt, OutcomeRecord]]
    ) -> None:
        """Apply outcomes one at a time. One the database rejects becomes a failed attempt,
        retried with backoff. If even that fails, the lease expires and the reaper takes over."""
        store = self.app._store
        for attempt, record in batch:
            try:
                statuses = store.apply_outcomes(connection.get(), self.owner, [record])
            except LOST:
                with self._cond:
                    self._outcomes.append((attempt, record))
                continue
            except Exception as exc:
                logger.error(
                    "outcome of instance %s could not be stored (%s); recording the attempt as "
                    "failed",
                    record.id,
                    exc,
                    extra={"instance_id": record.id},
                )
                replacement = runner.finish(attempt, None, exc)
                try:
                    statuses = store.apply_outcomes(connection.get(), self.owner, [replacement])
                except Exception:
                    logger.exception(
                        "recording the failed attempt of instance %s failed too; its lease will "
                        "expire and the reaper will run the step again",
                        record.id,
                    )
                    statuses = {}
            self._applied([(attempt, record)], statuses)

    def _hold_outcomes(
        self, now: float, wants: dict[str, int], stopping: bool
    ) -> tuple[bool, float]:
        """Decide whether finished outcomes may wait to share the next pick's round trip.

        They wait at most BATCH_WINDOW, and only while a pick is coming: some queue has a
        backlog and steps still running. Returns (hold, seconds left to hold).
        """
        if not self._outcomes or wants or stopping:
            return False, float("inf")
        pick_coming = any(
            self._backlog[queue] and self._inflight[queue] > 0 for queue in self.limits
        )
        remaining = self._outcomes_since + BATCH_WINDOW - now
        if pick_coming and remaining > 0:
            return True, remaining
        return False, float("inf")

    def _dispatch(self, rows: list, wants: dict[str, int]) -> None:  # type: ignore[type-arg]
        picked = dict.fromkeys(wants, 0)
        attempts = []
        include = self.app.include
        with self._cond:
            for row in rows:
                picked[row.queue] += 1
                self._inflight[row.queue] += 1
                attempt = Attempt(row, self.app)
                self._held[row.id] = attempt
                attempts.append(attempt)
            # A batch thinned to one row per concurrency key may leave rows behind it.
            keyed = {row.queue for row in rows if row.concurrency_key is not None}
            last: dict[str, tuple[int, Any, int]] = {}
            for row in rows:
                key = (row.priority, row.run_at, row.id)
                if row.queue not in last or key > last[row.queue]:
                    last[row.queue] = key
            for queue, wanted in wants.items():
                full = picked[queue] >= wanted
                self._backlog[queue] = full or queue in keyed
                # Rows left behind a thinned batch lie before its last key: no cursor then.
                if full and queue not in keyed:
                    self._cursors[queue] = last[queue]
                else:
                    self._cursors.pop(queue, None)
                self._free_since.pop(queue, None)
        if rows and telemetry.has_handlers("worker.picked"):
            telemetry.execute(
                "worker.picked",
                {"count": len(rows)},
                {"worker": self.owner, "ids": [row.id for row in rows]},
            )
        runnable = []
        for attempt in attempts:
            if attempt.resolve(include) is None:
                runner.start(attempt)
                self._finished(attempt, runner.finish(attempt, None, None))
            else:
                runnable.append(attempt)
        self._executor.submit_many(runnable)

    # Callbacks from the executor threads.

    def _finished(self, attempt: Attempt, record: OutcomeRecord | None) -> None:
        queue = attempt.row.queue
        limit = self.limits[queue]
        with self._cond:
            self._inflight[queue] -= 1
            free = limit - self._inflight[queue]
            now = time.monotonic()
            self._free_since.setdefault(queue, now)
            if record is None:
                if self._held.get(attempt.row.id) is attempt:
                    del self._held[attempt.row.id]
            else:
                if not self._outcomes:
                    self._outcomes_since = now
                self._outcomes.append((attempt, record))
            # Wake the feeder only when its decision can change: the first free slot or
            # outcome opens a batch window and the last busy slot freed closes it. Waking it on
            # every step would cost a thread switch each.
            if len(self._outcomes) == 1 or free == 1 or free == limit:
                self._cond.notify_all()

    def _applied(
        self, batch: list[tuple[Attempt, OutcomeRecord]], statuses: dict[int, Status]
    ) -> None:
        for _, record in batch:
            if record.id not in statuses:
                logger.warning(
                    "outcome of instance %s discarded: this worker no longer holds its lease "
                    "(it expired and the reaper released the row)",
                    record.id,
                    extra={"event": "outcome.discarded", "instance_id": record.id},
                )
        with self._cond:
            self._applying = set()
            for attempt, _ in batch:
                # The row may be held by a newer attempt of this worker: leave that one.
                if self._held.get(attempt.row.id) is attempt:
                    del self._held[attempt.row.id]
            # A row moved on to its next step may be runnable at once: look again.
            if any(record.reset_attempt and not record.delay for _, record in batch):
                self._woken = True
        if telemetry.has_handlers("worker.applied"):
            telemetry.execute(
                "worker.applied",
                {"count": len(batch)},
                {
                    "worker": self.owner,
                    "ids": [record.id for _, record in batch],
                    "statuses": statuses,
                },
            )

    def _held_ids(self) -> list[int]:
        with self._cond:
            return list(self._held)

    def _unsettled_ids(self) -> list[int]:
        """Return held rows whose outcome is not on its way to the database."""
        with self._cond:
            return [i for i in self._held if i not in self._applying]
