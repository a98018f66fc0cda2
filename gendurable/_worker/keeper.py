"""Keeps the leases of running steps alive and relays cancel requests to them.

A lease is extended every third of ``lease_timeout``. If this worker cannot reach the database
for longer than a lease, the reaper may give the row to another worker: at-least-once, so the
step may run twice, and only the holder's outcome is kept.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from .._store import Store
from .connection import LOST, Reconnecting

logger = logging.getLogger("gendurable.worker")


class LeaseKeeper(threading.Thread):
    def __init__(
        self,
        store: Store,
        conninfo: str,
        owner: str,
        lease_seconds: float,
        held: Callable[[], list[int]],
        unsettled: Callable[[], list[int]],
        cancelled: Callable[[int], None],
        stop: threading.Event,
    ) -> None:
        super().__init__(name="gendurable-lease-keeper", daemon=True)
        self._store = store
        self._owner = owner
        self._lease_seconds = lease_seconds
        self._held = held
        self._unsettled = unsettled
        self._cancelled = cancelled
        self._halt = stop
        self._connection = Reconnecting(conninfo, "lease keeper", stop)
        self._lost: set[int] = set()

    def run(self) -> None:
        interval = self._lease_seconds / 3
        while not self._halt.wait(interval):
            ids = self._held()
            # Forget rows this worker no longer holds, so that a later pick of the same row (a
            # retry, the next step, a row the reaper gave back) is extended like any other.
            self._lost.intersection_update(ids)
            if not ids:
                continue
            try:
                conn = self._connection.get()
                # Rows already known lost are asked for again: the statement only extends rows
                # this worker still leases, and one of them may have been picked again since.
                extended = self._store.extend_leases(conn, self._owner, ids, self._lease_seconds)
            except LOST as exc:
                if not self._halt.is_set():
                    self._connection.lost(exc)
                continue
            # A row whose outcome was applied after ``ids`` was read is not extended either, so
            # only rows still held, and not in an outcome batch the feeder is applying, are
            # reported as lost.
            still_held = set(self._unsettled())
            for instance_id in ids:
                if instance_id in extended:
                    self._lost.discard(instance_id)
                    if extended[instance_id]:
                        self._cancelled(instance_id)
                elif instance_id in still_held and instance_id not in self._lost:
                    self._lost.add(instance_id)
                    logger.warning(
                        "lease of instance %s was lost while its step runs; its outcome will be "
                        "discarded",
                        instance_id,
                        extra={"event": "lease.lost", "instance_id": instance_id},
                    )
        self._connection.close()
