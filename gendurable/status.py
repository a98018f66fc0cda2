"""The statuses of an instance. See ``migrations/0001_initial.sql`` for who moves rows between them."""

from __future__ import annotations

import enum


class Status(enum.StrEnum):
    """The status of an instance, as stored in the ``durable_status`` enum."""

    AVAILABLE = "available"
    RUNNING = "running"
    AWAITING = "awaiting"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({Status.DONE, Status.FAILED, Status.CANCELLED})
LIVE = (Status.AVAILABLE, Status.RUNNING, Status.AWAITING)
