"""The context a step receives: who it is, which attempt, and whether it was asked to stop."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .status import Status

if TYPE_CHECKING:
    from .app import App


@dataclass(frozen=True)
class Signal:
    """A signal in an instance's inbox."""

    id: int
    name: str
    payload: Any
    received_at: datetime


@dataclass(frozen=True)
class Child:
    """A child started by ``Children``, as its parent's join step receives it."""

    id: int
    fsm: str
    status: Status
    result: Any
    error: str | None


@dataclass(eq=False)
class Context:
    """The attempt a step runs in: its ids, counters, signals and children.

    ``awaited`` lists the inbox's signals whose names the last ``Await`` named, ``all`` the
    whole inbox, both in arrival order; ``children`` the children of the last ``Children``.
    """

    id: int
    fsm: str
    step: str
    attempt: int
    max_attempts: int
    queue: str
    correlation_key: str | None
    inserted_at: datetime
    app: App
    errors: list[dict[str, Any]] = field(default_factory=list)
    awaited: list[Signal] = field(default_factory=list)
    all: list[Signal] = field(default_factory=list)
    children: list[Child] = field(default_factory=list)
    _cancel: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def cancelled(self) -> bool:
        """True once ``cancel()`` was called on this instance while the step runs."""
        return self._cancel.is_set()

    def wait_cancelled(self, timeout: float | None = None) -> bool:
        """Block until the instance is cancelled or ``timeout`` passes; return whether it was."""
        return self._cancel.wait(timeout)
