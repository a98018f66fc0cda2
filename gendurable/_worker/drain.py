"""``app.drain()``: run everything runnable in this process, through the worker's code path."""

from __future__ import annotations

import os
import queue
import time
import uuid
from collections import Counter
from typing import TYPE_CHECKING, Any

import psycopg

from .._store import OutcomeRecord, PickedRow
from ..status import Status
from . import runner
from .executor import Executor
from .runner import Attempt

if TYPE_CHECKING:
    from ..app import App

# How far ahead ``with_scheduled=True`` looks: ten years, which covers any real countdown.
SCHEDULED_HORIZON = 10 * 365 * 86400.0
BATCH = 100


def drain(
    app: App, queues: list[str] | None, with_scheduled: bool, timeout: float
) -> dict[str, int]:
    """Run runnable rows until none is left; return counts by outcome."""
    owner = f"drain:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    horizon = SCHEDULED_HORIZON if with_scheduled else 0.0
    finished: queue.SimpleQueue[tuple[Attempt, OutcomeRecord | None]] = queue.SimpleQueue()
    executor = Executor(
        1, lambda attempt, record: finished.put((attempt, record)), "gendurable-drain"
    )
    executor.start()
    counts: Counter[str] = Counter()
    deadline = time.monotonic() + timeout
    try:
        with app.pool.connection() as conn:
            while time.monotonic() < deadline:
                names = queues or app._store.queues_with_work(conn, horizon)
                if not names:
                    break
                rows = app._store.pick(
                    conn,
                    owner,
                    dict.fromkeys(names, BATCH),
                    {},
                    app.settings.lease_timeout,
                    horizon,
                )
                if not rows:
                    break
                records = []
                for index, row in enumerate(rows):
                    attempt = Attempt(row, app)
                    if attempt.resolve(app.include) is None:
                        runner.start(attempt)
                        records.append(runner.finish(attempt, None, None))
                        continue
                    executor.submit(attempt)
                    try:
                        _, record = finished.get(timeout=max(deadline - time.monotonic(), 0.0))
                    except queue.Empty:
                        _give_up(app, conn, owner, executor, records, rows[index:])
                        raise TimeoutError(
                            f"drain() timed out after {timeout} s while instance {row.id} "
                            f"({row.fsm}) was still running; its row and the {len(rows) - index - 1} "
                            "not yet started are available again, and the step may still finish "
                            "in the background"
                        ) from None
                    if record is not None:
                        records.append(record)
                statuses = app._store.apply_outcomes(conn, owner, records)
                for record in records:
                    counts[_label(record, statuses.get(record.id))] += 1
            else:
                raise TimeoutError(
                    f"drain() still had work after {timeout} s (counts so far: {dict(counts)}); "
                    "a step may keep rescheduling itself, or raise the timeout"
                )
    finally:
        executor.stop()
    return dict(counts)


def _give_up(
    app: App,
    conn: psycopg.Connection[Any],
    owner: str,
    executor: Executor,
    records: list[OutcomeRecord],
    unfinished: list[PickedRow],
) -> None:
    """Apply the outcomes gathered so far and hand back the leases of the rest of the batch."""
    executor.abandon()
    app._store.apply_outcomes(conn, owner, records)
    app._store.release(conn, owner, [row.id for row in unfinished])


def _label(record: OutcomeRecord, status: Status | None) -> str:
    if status is None:
        return "discarded"
    if status is Status.AVAILABLE:
        return "next" if record.reset_attempt else "retried"
    return status.value
