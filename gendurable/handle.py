"""A handle on an inserted instance: its id, its status, its result, and cancel()."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from .errors import InstanceCancelled, InstanceFailed, NoSuchInstance
from .status import Status

if TYPE_CHECKING:
    import psycopg

    from .app import App


class Handle:
    """An inserted instance. ``inserted`` is False when a correlation key deduplicated it."""

    __slots__ = ("_app", "id", "inserted")

    def __init__(self, app: App, instance_id: int, inserted: bool = True) -> None:
        self._app = app
        self.id = instance_id
        self.inserted = inserted

    def __repr__(self) -> str:
        return f"Handle(id={self.id}, inserted={self.inserted})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Handle) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def status(self) -> Status:
        """Return the current status; raises NoSuchInstance once GC deleted the row."""
        return self._read()[0]

    def result(self, timeout: float | None = None) -> Any:
        """Wait for a terminal status and return the result of a ``done`` instance.

        Raises ``InstanceFailed`` for ``failed``, ``InstanceCancelled`` for ``cancelled`` and
        ``TimeoutError`` when ``timeout`` seconds pass first.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.01
        while True:
            status, result, last_error = self._read()
            if status is Status.DONE:
                return result
            if status is Status.FAILED:
                raise InstanceFailed(self.id, last_error)
            if status is Status.CANCELLED:
                raise InstanceCancelled(self.id)
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(
                    f"instance {self.id} is still {status.value} after {timeout} s; wait longer "
                    "or check that a worker serves its queue"
                )
            sleep_for = (
                pause if deadline is None else min(pause, max(deadline - time.monotonic(), 0))
            )
            time.sleep(sleep_for)
            pause = min(pause * 1.5, 0.5)

    def get(self, timeout: float | None = None) -> Any:
        """Wait for and return the result, like ``result()`` (Celery's AsyncResult.get)."""
        return self.result(timeout)

    def ready(self) -> bool:
        """Tell whether the instance reached a terminal status."""
        return self.status().terminal

    def cancel(self, connection: psycopg.Connection[Any] | None = None) -> Status:
        """Cancel the instance; return its status after the request (``running`` until it stops)."""
        return self._app.cancel(self.id, connection=connection)

    def _read(self) -> tuple[Status, Any, dict[str, Any] | None]:
        row = self._app._store.status(self.id)
        if row is None:
            raise NoSuchInstance(
                f"no instance with id {self.id}: it was never committed or GC deleted it"
            )
        return Status(row[0]), row[1], row[2]
