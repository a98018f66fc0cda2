"""The one seam to the database: a method per state transition, each one round trip.

The worker, beat, app and CLI call these methods and never SQL. Parameters are built in
pure functions (``_params``), so a sync and a future async executor share them. Every method
takes an optional caller's connection; then it joins that transaction and does not commit.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from .. import telemetry
from ..sql import query
from ..status import Status
from . import _params
from ._params import OutcomeRecord

__all__ = ["OutcomeRecord", "PickedRow", "Store"]

logger = logging.getLogger("gendurable")

Connection = psycopg.Connection[Any]

_COPY_COLUMNS = (
    "id",
    "fsm",
    "step",
    "state",
    "queue",
    "priority",
    "run_at",
    "max_attempts",
    "timeout",
    "expires_at",
    "correlation_scope",
    "concurrency_key",
    "rate_limit",
    "rate_partition",
    "weight",
    "parent_id",
)


@dataclass(slots=True)
class PickedRow:
    """A row leased by a pick, with what its step needs."""

    id: int
    fsm: str
    step: str
    state: Any
    queue: str
    priority: int
    attempt: int
    max_attempts: int
    timeout: float | None
    correlation_key: str | None
    concurrency_key: str | None
    inserted_at: datetime
    errors: list[dict[str, Any]]
    run_at: datetime
    attempted_at: datetime
    awaited_signals: list[str] | None
    signals: list[dict[str, Any]] | None
    children: list[dict[str, Any]] | None


class Store:
    """Database operations of gendurable, on a connection pool or a caller's connection."""

    def __init__(self, pool: ConnectionPool[Connection]) -> None:
        self._pool = pool

    def _run(self, connection: Connection | None, operation: Callable[[Connection], T]) -> T:
        """Run ``operation`` on the caller's connection, or on a pooled one.

        A pooled connection the server ended while it sat idle (a restart, a terminated
        backend) fails its next statement. That statement did not commit, so it runs again on
        another connection instead of failing the caller.
        """
        if connection is not None:
            return operation(connection)
        # Every idle connection of the pool may have been ended at once (a server restart).
        tries = self._pool.max_size + 1
        for attempt in range(1, tries + 1):
            try:
                with self._pool.connection() as conn:
                    return operation(conn)
            except psycopg.OperationalError as exc:
                if attempt == tries or exc.sqlstate not in _SERVER_ENDED:
                    raise
                logger.info(
                    "the server closed a pooled connection (%s); retrying on a new one",
                    str(exc).strip().splitlines()[0] if str(exc).strip() else exc.sqlstate,
                )
        raise AssertionError("unreachable")

    def _execute(
        self, name: str, params: dict[str, Any], connection: Connection | None = None
    ) -> list[tuple[Any, ...]]:
        def operation(conn: Connection) -> list[tuple[Any, ...]]:
            cursor = conn.execute(query(name), params, prepare=True)
            return cursor.fetchall() if cursor.description else []

        return self._run(connection, operation)

    # Inserts.

    def insert(self, insert: Any, connection: Connection | None = None) -> tuple[int, bool]:
        """Insert one instance; return (id, inserted), inserted False when deduplicated."""
        params = _params.insert_one(insert)

        def operation(conn: Connection) -> tuple[Any, ...] | None:
            # A concurrent insert of the same correlation key can commit between the INSERT's
            # conflict check and the fallback SELECT; the second try then finds it.
            for _ in range(3):
                row: tuple[Any, ...] | None = conn.execute(
                    query("instance_insert"), params, prepare=True
                ).fetchone()
                if row is not None:
                    return row
            return None

        row = self._run(connection, operation)
        if row is not None:
            return int(row[0]), bool(row[1])
        raise RuntimeError(
            f"insert of {insert.fsm} with correlation key {insert.correlation_key!r} neither "
            "inserted nor found a live row after 3 tries; the holder changes status too fast"
        )

    def insert_many(
        self, inserts: Sequence[Any], connection: Connection | None = None
    ) -> list[tuple[int, bool]]:
        """Insert many instances; return (id, inserted) for each, in order.

        Without correlation keys the rows go in by COPY; with any, by one INSERT ... SELECT
        that skips taken keys, after which the holders of those keys are looked up.
        """
        if not inserts:
            return []
        return self._run(connection, lambda conn: self._insert_many(conn, inserts))

    def _insert_many(self, conn: Connection, inserts: Sequence[Any]) -> list[tuple[int, bool]]:
        with _atomic(conn):
            ids, clock = conn.execute(
                query("instance_reserve_ids"), {"count": len(inserts)}
            ).fetchone()  # type: ignore[misc]
            if not any(item.correlation_key for item in inserts):
                self._copy(conn, inserts, ids, clock)
                return [(int(i), True) for i in ids]
            rows = conn.execute(
                query("instance_insert_many"), _params.insert_many(inserts, ids)
            ).fetchall()
            inserted = {row[0] for row in rows}
            missing = [
                item
                for item, i in zip(inserts, ids, strict=True)
                if i not in inserted and item.correlation_key
            ]
            holders: dict[tuple[str, str], int] = {}
            if missing:
                found = conn.execute(
                    query("instance_find_correlated"),
                    {
                        "fsm": [item.fsm for item in missing],
                        "correlation_key": [item.correlation_key for item in missing],
                    },
                ).fetchall()
                holders = {(fsm, key): int(i) for fsm, key, i in found}
        result: list[tuple[int, bool]] = []
        for item, i in zip(inserts, ids, strict=True):
            if i in inserted:
                result.append((int(i), True))
            else:
                result.append((holders.get((item.fsm, item.correlation_key), int(i)), False))
        return result

    def _copy(
        self, conn: Connection, inserts: Sequence[Any], ids: list[int], clock: datetime
    ) -> None:
        statement = f"COPY gen_durable ({', '.join(_COPY_COLUMNS)}) FROM STDIN"
        with conn.cursor() as cursor, cursor.copy(statement) as copy:
            for item, i in zip(inserts, ids, strict=True):
                copy.write_row(_params.copy_row(item, i, clock))

    # The worker's transitions.

    def pick(
        self,
        conn: Connection,
        owner: str,
        free: dict[str, int],
        global_limits: dict[str, int | None],
        lease_seconds: float,
        horizon: float = 0.0,
        cursors: dict[str, _params.Cursor] | None = None,
    ) -> list[PickedRow]:
        """Lease up to ``free[queue]`` due rows of each queue, most urgent first.

        ``cursors`` lets a queue's scan start after the last row this caller picked.
        """
        return self.cycle(conn, owner, [], free, global_limits, lease_seconds, horizon, cursors)[1]

    def cycle(
        self,
        conn: Connection,
        owner: str,
        outcomes: Sequence[OutcomeRecord],
        free: dict[str, int],
        global_limits: dict[str, int | None],
        lease_seconds: float,
        horizon: float = 0.0,
        cursors: dict[str, _params.Cursor] | None = None,
    ) -> tuple[dict[int, Status], list[PickedRow]]:
        """Apply outcomes and pick new rows in one transaction and one round trip.

        One commit serves both, which halves the commits per batch of steps on a busy worker.
        """
        if not free:
            return (self.apply_outcomes(conn, owner, outcomes) if outcomes else {}), []
        pick_params = _params.pick(owner, free, global_limits, lease_seconds, horizon, cursors)
        limited = sorted(q for q in free if global_limits.get(q) is not None)
        return _contended(lambda: self._cycle(conn, owner, outcomes, pick_params, limited))

    def _cycle(
        self,
        conn: Connection,
        owner: str,
        outcomes: Sequence[OutcomeRecord],
        pick_params: dict[str, Any],
        limited: list[str],
    ) -> tuple[dict[int, Status], list[PickedRow]]:
        if not outcomes and not limited:
            rows = conn.execute(query("instance_pick"), pick_params, prepare=True).fetchall()
            return {}, [PickedRow(*row) for row in rows]
        with conn.pipeline(), _atomic(conn):
            if limited:
                # A global limit counts running rows; picks of that queue take turns, so each
                # counts the rows the one before it leased (its statement starts after the lock).
                conn.execute(query("queue_lock_limited"), {"queues": limited})
            applied = None
            if outcomes:
                self._insert_children(conn, owner, outcomes)
                applied = conn.execute(
                    query("instance_apply_outcomes"),
                    _params.outcomes(owner, outcomes),
                    prepare=True,
                )
            picked = conn.execute(query("instance_pick"), pick_params, prepare=True)
        statuses = (
            {} if applied is None else {int(row[0]): Status(row[1]) for row in applied.fetchall()}
        )
        return statuses, [PickedRow(*row) for row in picked.fetchall()]

    def apply_outcomes(
        self, conn: Connection, owner: str, outcomes: Sequence[OutcomeRecord]
    ) -> dict[int, Status]:
        """Apply finished attempts' outcomes; return the new status of each row still leased."""
        params = _params.outcomes(owner, outcomes)
        if any(record.children for record in outcomes):
            with _atomic(conn):
                self._insert_children(conn, owner, outcomes)
                rows = conn.execute(query("instance_apply_outcomes"), params).fetchall()
        else:
            rows = conn.execute(query("instance_apply_outcomes"), params, prepare=True).fetchall()
        return {int(row[0]): Status(row[1]) for row in rows}

    def _insert_children(
        self, conn: Connection, owner: str, outcomes: Sequence[OutcomeRecord]
    ) -> None:
        if any(record.children for record in outcomes):
            conn.execute(query("instance_insert_many"), _params.children(owner, outcomes))

    def extend_leases(
        self, conn: Connection, owner: str, ids: Sequence[int], lease_seconds: float
    ) -> dict[int, bool]:
        """Extend held leases; return {id: cancel_requested} for those still held."""
        rows = conn.execute(
            query("lease_extend"),
            {"owner": owner, "ids": list(ids), "lease_seconds": lease_seconds},
            prepare=True,
        ).fetchall()
        return {int(i): bool(cancel) for i, cancel in rows}

    def release(self, conn: Connection, owner: str, ids: Sequence[int]) -> list[int]:
        """Give back leases a draining worker could not finish."""
        rows = conn.execute(
            query("instance_release"), {"owner": owner, "ids": list(ids)}
        ).fetchall()
        return [int(row[0]) for row in rows]

    def queues_with_work(self, conn: Connection, horizon: float) -> list[str]:
        """List the queues with rows available now, or within ``horizon`` seconds."""
        rows = conn.execute(query("instance_queues_with_work"), {"horizon": horizon}).fetchall()
        return [row[0] for row in rows]

    # Beat.

    def reap(self, limit: int = 1000) -> list[tuple[Any, ...]]:
        """Make expired leases runnable again (or failed when out of attempts)."""
        return self._execute("lease_reap", {"limit": limit})

    def expire_unstarted(self, limit: int = 1000) -> list[tuple[Any, ...]]:
        """Cancel rows not started before their ``expires`` time."""
        return self._execute("lease_expire_unstarted", {"limit": limit})

    def expire_awaits(self, limit: int = 1000) -> list[tuple[Any, ...]]:
        """Wake awaiting rows whose Await timeout passed."""
        return self._execute("await_expire", {"limit": limit})

    def signal(
        self,
        fsm: str,
        correlation_key: str,
        name: str,
        payload: Any,
        connection: Connection | None = None,
    ) -> tuple[int, Status, str, bool] | None:
        """Deliver a signal; return (instance id, status after, queue, whether it woke the
        instance), or None when no live instance has the key."""
        rows = self._execute(
            "signal_send",
            {
                "fsm": fsm,
                "correlation_key": correlation_key,
                "name": name,
                "payload": Jsonb(payload),
            },
            connection,
        )
        if not rows:
            return None
        instance_id, status, queue, woke = rows[0][:4]
        return int(instance_id), Status(status), queue, bool(woke)

    def gc_sweep(self, retention_seconds: float, batch: int) -> int:
        """Delete one batch of old terminal rows; return how many went."""
        rows = self._execute("gc_sweep", {"retention_seconds": retention_seconds, "batch": batch})
        return len(rows)

    # Reading and operating on one instance.

    def status(self, instance_id: int) -> tuple[Any, ...] | None:
        rows = self._execute("instance_status", {"id": instance_id})
        return rows[0] if rows else None

    def get(self, instance_id: int) -> dict[str, Any] | None:
        with self._pool.connection() as conn, conn.cursor() as cursor:
            cursor.execute(query("instance_get"), {"id": instance_id})
            row = cursor.fetchone()
            if row is None:
                return None
            names = [column.name for column in cursor.description or ()]
            return dict(zip(names, row, strict=True))

    def cancel(self, instance_id: int, connection: Connection | None = None) -> Status | None:
        def operation(conn: Connection) -> list[tuple[Any, ...]]:
            rows = conn.execute(query("instance_cancel"), {"id": instance_id}).fetchall()
            for row_id, status in rows:
                if status == Status.RUNNING:
                    conn.execute(query("cancel_notify"), {"id": row_id})
            return rows

        rows = self._run(connection, operation)
        statuses = {int(row_id): Status(status) for row_id, status in rows}
        return statuses.get(instance_id)

    def retry(self, instance_id: int) -> Status | None:
        rows = self._execute("instance_retry", {"id": instance_id})
        return Status(rows[0][1]) if rows else None

    # Queues.

    def set_paused(self, queue: str, paused: bool) -> None:
        with self._pool.connection() as conn:
            conn.execute(query("queue_set_paused"), {"name": queue, "paused": paused})
            if not paused:
                conn.execute(query("queue_notify"), {"name": queue})

    def paused_queues(self) -> list[str]:
        return [row[0] for row in self._execute("queue_list_paused", {})]

    def schedules(self) -> list[tuple[Any, ...]]:
        return self._execute("schedule_list", {})

    def queue_stats(self) -> list[tuple[Any, ...]]:
        return self._execute("queue_stats", {})


T = TypeVar("T")

# SQLSTATEs of a session the server ended: admin_shutdown, crash_shutdown, cannot_connect_now.
_SERVER_ENDED = frozenset({"57P01", "57P02", "57P03"})

# Tries of a pick that lost a race for a concurrency key to another worker's pick.
_CONTENDED_TRIES = 10


def _contended(operation: Callable[[], T]) -> T:
    """Run a pick again when another worker's pick took a row of the same concurrency key.

    The picker skips keys already running, but two picks that start together cannot see each
    other's rows; the unique index then rejects the second, which rolls back and tries again.
    """
    for attempt in range(1, _CONTENDED_TRIES + 1):
        try:
            return operation()
        except psycopg.errors.UniqueViolation as exc:
            if (
                exc.diag.constraint_name != "gen_durable_concurrency_active"
                or attempt == _CONTENDED_TRIES
            ):
                raise
            # Two picks that collided once tend to collide again if they retry in step.
            time.sleep(random.uniform(0, 0.002 * attempt))
            telemetry.execute(
                "concurrency.contended",
                {"count": 1},
                {"attempt": attempt, "detail": exc.diag.message_detail},
            )
    raise AssertionError("unreachable")


@contextmanager
def _atomic(conn: Connection) -> Iterator[None]:
    """Group statements in one transaction: a new one on an autocommit connection, else the
    caller's own (a transaction() block on an idle connection would commit it at exit)."""
    if conn.autocommit:
        with conn.transaction():
            yield
    else:
        yield
