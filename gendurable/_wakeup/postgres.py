"""LISTEN/NOTIFY wakeups: a dedicated connection that wakes the feeder when work arrives.

Wakeups only cut latency. Inserts notify on commit (a statement trigger); a lost notification
delays work by at most one poll interval. After a reconnect the listener wakes the feeder
once, because notifications sent while it was away are gone.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from .._worker.connection import LOST, Reconnecting

if TYPE_CHECKING:
    from ..app import App

logger = logging.getLogger("gendurable.worker")

WORK_CHANNEL = "gen_durable"
CANCEL_CHANNEL = "gen_durable_cancel"


class Listener(threading.Thread):
    """Calls ``on_work(queue)`` for each insert notification and ``on_cancel(id)`` for cancels."""

    def __init__(
        self,
        conninfo: str,
        on_work: Callable[[str | None], None],
        on_cancel: Callable[[int], None],
        stop: threading.Event,
        name: str = "listener",
    ) -> None:
        super().__init__(name=f"gendurable-{name}", daemon=True)
        self._connection = Reconnecting(conninfo, name, stop)
        self._on_work = on_work
        self._on_cancel = on_cancel
        self._halt = stop
        self.listening = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                conn = self._connection.get()
                conn.execute(f"LISTEN {WORK_CHANNEL}")
                conn.execute(f"LISTEN {CANCEL_CHANNEL}")
                self.listening.set()
                # Anything sent while this connection was down is lost: look once.
                self._on_work(None)
                while not self._halt.is_set():
                    for notify in conn.notifies(timeout=0.5):
                        if notify.channel == CANCEL_CHANNEL:
                            self._cancel(notify.payload)
                        else:
                            self._on_work(notify.payload or None)
                    # notifies() returns quietly when the connection closes under it.
                    if conn.closed or conn.broken:
                        raise _ListenerLost("the listening connection closed")
            except (*LOST, _ListenerLost) as exc:
                self.listening.clear()
                if self._halt.is_set():
                    break
                self._connection.lost(exc)
            except Exception:
                self.listening.clear()
                logger.exception("listener failed; restarting it in 1 s")
                self._halt.wait(1.0)
        self._connection.close()

    def _cancel(self, payload: str) -> None:
        try:
            instance_id = int(payload)
        except ValueError:
            logger.warning(
                "ignored a cancel notification with payload %r: not an instance id", payload
            )
            return
        self._on_cancel(instance_id)


class _ListenerLost(Exception):
    pass


class NotifyPublisher:
    """Wakeups by NOTIFY on the app's pool. Inserts need none: a trigger sends them on commit."""

    needs_insert_wakeups = False

    def __init__(self, app: App) -> None:
        self._app = app

    def publish(self, queues: list[str]) -> None:
        with self._app.pool.connection() as conn:
            for queue in queues:
                conn.execute("SELECT pg_notify(%s, %s)", (WORK_CHANNEL, queue))

    def publish_cancel(self, instance_id: int) -> None:
        with self._app.pool.connection() as conn:
            conn.execute("SELECT pg_notify(%s, %s)", (CANCEL_CHANNEL, str(instance_id)))

    def close(self) -> None:
        pass
