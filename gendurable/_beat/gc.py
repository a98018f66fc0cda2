"""Garbage collection: deletes terminal rows older than ``gc_retention``, a batch per statement.

Each statement selects at most ``gc_batch`` ids through the ``finished_at`` index and deletes
them by id, so its cost does not grow with the table. Children of a parent that is still live
are kept, because the parent's join step reads them.
"""

from __future__ import annotations

from .. import telemetry
from .._store import Store


def sweep_once(store: Store, retention_seconds: float, batch: int) -> int:
    """Delete old terminal rows until none is left; return how many went."""
    total = 0
    while True:
        count = store.gc_sweep(retention_seconds, batch)
        total += count
        if count < batch:
            break
    store._execute("schedule_prune_ticks", {"retention_seconds": retention_seconds})
    if total:
        telemetry.execute("gc.swept", {"count": total}, {"count": total})
    return total
