"""Pure functions that turn inserts and outcomes into query parameters."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg.types.json import Jsonb

from ..status import Status


@dataclass(slots=True)
class OutcomeRecord:
    """The decision of one attempt, as columns of ``instance_apply_outcomes``."""

    id: int
    status: Status
    # When the attempt's pick leased the row; with the owner, it identifies the lease.
    attempted_at: datetime | None = None
    step: str | None = None
    state: Any = None
    state_changed: bool = False
    delay: float | None = None
    reset_attempt: bool = False
    result: Any = None
    error: dict[str, Any] | None = None
    # Await: the names that wake the row. Children: the unsaved children to insert.
    awaited: list[str] | None = None
    consumed: list[int] | None = None
    joining: bool = False
    children: list[Any] | None = None


def _scope_literal(scope: Sequence[str]) -> str:
    return "{" + ",".join(scope) + "}"


def insert_one(item: Any) -> dict[str, Any]:
    return {
        "fsm": item.fsm,
        "step": item.step,
        "state": Jsonb(item.state),
        "queue": item.queue,
        "priority": item.priority,
        "run_at": item.run_at,
        "delay": item.delay,
        "max_attempts": item.max_attempts,
        "timeout": item.timeout,
        "expires_at": item.expires_at,
        "expires_in": item.expires_in,
        "correlation_key": item.correlation_key,
        "correlation_scope": list(item.correlation_scope),
        "concurrency_key": item.concurrency_key,
        "rate_limit": item.rate_limit,
        "rate_partition": item.rate_partition,
        "weight": item.weight,
        "parent_id": item.parent_id,
    }


def insert_many(
    items: Sequence[Any], ids: Sequence[int | None], owner: str | None = None
) -> dict[str, Any]:
    return {
        "owner": owner,
        "id": list(ids),
        "fsm": [item.fsm for item in items],
        "step": [item.step for item in items],
        "state": [Jsonb(item.state) for item in items],
        "queue": [item.queue for item in items],
        "priority": [item.priority for item in items],
        "run_at": [item.run_at for item in items],
        "delay": [item.delay for item in items],
        "max_attempts": [item.max_attempts for item in items],
        "timeout": [item.timeout for item in items],
        "expires_at": [item.expires_at for item in items],
        "expires_in": [item.expires_in for item in items],
        "correlation_key": [item.correlation_key for item in items],
        "scope": [_scope_literal(item.correlation_scope) for item in items],
        "concurrency_key": [item.concurrency_key for item in items],
        "rate_limit": [item.rate_limit for item in items],
        "rate_partition": [item.rate_partition for item in items],
        "weight": [item.weight for item in items],
        "parent_id": [item.parent_id for item in items],
    }


def children(owner: str, records: Sequence[OutcomeRecord]) -> dict[str, Any]:
    items = [child for record in records for child in record.children or ()]
    return insert_many(items, [None] * len(items), owner)


def copy_row(item: Any, instance_id: int, clock: datetime) -> tuple[Any, ...]:
    """Build one COPY row; times are computed from the database clock read with the ids."""
    run_at = (item.run_at or clock) + timedelta(seconds=item.delay)
    expires_at = item.expires_at
    if expires_at is None and item.expires_in is not None:
        expires_at = clock + timedelta(seconds=item.expires_in)
    return (
        instance_id,
        item.fsm,
        item.step,
        Jsonb(item.state),
        item.queue,
        item.priority,
        run_at,
        item.max_attempts,
        item.timeout,
        expires_at,
        list(item.correlation_scope),
        item.concurrency_key,
        item.rate_limit,
        item.rate_partition,
        item.weight,
        item.parent_id,
    )


def outcomes(owner: str, records: Sequence[OutcomeRecord]) -> dict[str, Any]:
    return {
        "owner": owner,
        "id": [r.id for r in records],
        "attempted_at": [r.attempted_at for r in records],
        "status": [r.status.value for r in records],
        "step": [r.step for r in records],
        "state": [Jsonb(r.state) if r.state_changed else None for r in records],
        "delay": [r.delay for r in records],
        "reset_attempt": [r.reset_attempt for r in records],
        "result": [None if r.result is None else Jsonb(r.result) for r in records],
        "error": [None if r.error is None else Jsonb(r.error) for r in records],
        "awaited": [None if r.awaited is None else Jsonb(r.awaited) for r in records],
        "consumed": [None if r.consumed is None else Jsonb(r.consumed) for r in records],
        "joining": [r.joining for r in records],
    }


# A pick key before every row: the scan starts at the front of the queue.
START = (-1, datetime(1, 1, 1, tzinfo=UTC), 0)

Cursor = tuple[int, datetime, int]


def pick(
    owner: str,
    free: dict[str, int],
    global_limits: dict[str, int | None],
    lease_seconds: float,
    horizon: float,
    cursors: dict[str, Cursor] | None = None,
) -> dict[str, Any]:
    queues = list(free)
    after = [(cursors or {}).get(q, START) for q in queues]
    return {
        "owner": owner,
        "queues": queues,
        "free": [free[q] for q in queues],
        "global_limits": [global_limits.get(q) for q in queues],
        "after_priority": [key[0] for key in after],
        "after_run_at": [key[1] for key in after],
        "after_id": [key[2] for key in after],
        "lease_seconds": lease_seconds,
        "horizon": horizon,
    }
