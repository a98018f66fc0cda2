"""Wakeup channels: hints that rows are due, so workers pick at once instead of at their next
poll. PostgreSQL stays the source of truth: a lost hint delays work by one poll interval."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ..app import App


class Publisher(Protocol):
    """Sends wakeups for queues; inserts through PostgreSQL need none (a trigger notifies)."""

    #: Whether inserts must publish, because no trigger reaches the workers.
    needs_insert_wakeups: bool

    def publish(self, queues: list[str]) -> None: ...

    def publish_cancel(self, instance_id: int) -> None: ...

    def close(self) -> None: ...


def channel(app: App) -> Publisher:
    """Return the publisher for the app's ``wakeup`` setting."""
    url = app.settings.wakeup
    if url == "postgres":
        from .postgres import NotifyPublisher

        return NotifyPublisher(app)
    from .kombu import KombuPublisher

    return KombuPublisher(url)
