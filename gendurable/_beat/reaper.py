"""The reaper: makes rows whose lease expired runnable again, cancels unstarted rows past
their ``expires`` time, and wakes awaiting rows whose ``Await`` timeout passed (so a timeout
fires up to one ``reaper_interval`` late).

A lease expires when its worker died, lost the database for longer than a lease, or hung. The
rescued row's step runs again from its last committed state (at-least-once); a row that has
used all its attempts is failed instead, and one whose cancel was requested is cancelled.
"""

from __future__ import annotations

from .. import telemetry
from .._store import Store

BATCH = 1000


def reap_once(store: Store) -> int:
    """Run one reaper pass; return how many rows it rescued, failed or cancelled."""
    total = 0
    while True:
        rows = store.reap(BATCH)
        if rows:
            ids = [row[0] for row in rows]
            telemetry.execute(
                "reaper.rescued", {"count": len(ids)}, {"ids": ids, "count": len(ids)}
            )
            total += len(ids)
        if len(rows) < BATCH:
            break
    while len(store.expire_unstarted(BATCH)) == BATCH:
        pass
    while len(store.expire_awaits(BATCH)) == BATCH:
        pass
    return total
