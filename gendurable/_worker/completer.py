"""Applies outcomes in batches: every record waiting when the last batch ended goes in one statement.

An outcome is applied only where this worker still holds the lease; a row the reaper gave to
someone else keeps that other worker's result, and this worker logs what it discarded.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from .. import telemetry
from .._store import OutcomeRecord, Store
from ..status import Status
from .connection import LOST, Reconnecting
from .runner import Attempt

logger = logging.getLogger("gendurable.worker")

MAX_BATCH = 500


class Completer(threading.Thread):
    def __init__(
        self,
        store: Store,
        conninfo: str,
        owner: str,
        applied: Callable[[list[Attempt], dict[int, Status]], None],
        stop: threading.Event,
    ) -> None:
        super().__init__(name="gendurable-completer", daemon=True)
        self._store = store
        self._owner = owner
        self._applied = applied
        self._halt = stop
        self._connection = Reconnecting(conninfo, "completer", stop)
        self._queue: queue.SimpleQueue[tuple[Attempt, OutcomeRecord] | None] = queue.SimpleQueue()
        self._idle = threading.Condition()
        self._pending = 0

    def put(self, attempt: Attempt, record: OutcomeRecord) -> None:
        with self._idle:
            self._pending += 1
        self._queue.put((attempt, record))

    def pending(self) -> int:
        with self._idle:
            return self._pending

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every record put so far is applied; return False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def close(self) -> None:
        self._queue.put(None)

    def run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                break
            batch = [item]
            while len(batch) < MAX_BATCH:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)
                    break
                batch.append(more)
            self._apply(batch)
        self._connection.close()

    def _apply(self, batch: list[tuple[Attempt, OutcomeRecord]]) -> None:
        records = [record for _, record in batch]
        attempts = [attempt for attempt, _ in batch]
        while True:
            try:
                conn = self._connection.get()
                statuses = self._store.apply_outcomes(conn, self._owner, records)
                break
            except LOST as exc:
                if self._halt.is_set():
                    logger.warning(
                        "stopping with %d outcomes not applied (database unreachable); their "
                        "leases will expire and the steps run again", len(records))
                    statuses = {}
                    break
                self._connection.lost(exc)
        for record in records:
            if record.id not in statuses:
                logger.warning(
                    "outcome of instance %s discarded: this worker no longer holds its lease "
                    "(it expired and the reaper released the row)", record.id,
                    extra={"event": "outcome.discarded", "instance_id": record.id},
                )
        self._applied(attempts, statuses)
        if telemetry.has_handlers("worker.applied"):
            telemetry.execute(
                "worker.applied", {"count": len(records)},
                {"worker": self._owner, "ids": [r.id for r in records], "statuses": statuses},
            )
        with self._idle:
            self._pending -= len(batch)
            self._idle.notify_all()
