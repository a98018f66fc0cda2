"""The beat loops: the scheduler every ``beat_interval``, the reaper every ``reaper_interval``
and GC every ``gc_interval``.

Any number of beats may run: the reaper and GC lock the rows they change with SKIP LOCKED,
so two beats never handle one row twice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from .._worker.connection import LOST
from .gc import sweep_once
from .reaper import reap_once
from .scheduler import Scheduler

if TYPE_CHECKING:
    from ..app import App

logger = logging.getLogger("gendurable.beat")


class Beat:
    """Runs the beat loops in background threads until ``stop()``."""

    def __init__(self, app: App, scheduler: Scheduler | None = None) -> None:
        self.app = app
        self._stop = threading.Event()
        settings = app.settings
        self.scheduler = scheduler or Scheduler(app)
        self._threads = [
            self._loop("scheduler", settings.beat_interval, self._schedule),
            self._loop("reaper", settings.reaper_interval, lambda: reap_once(app._store)),
            self._loop(
                "gc",
                settings.gc_interval,
                lambda: sweep_once(app._store, settings.gc_retention, settings.gc_batch),
            ),
        ]

    def _schedule(self) -> int:
        return len(self.scheduler.run_once())

    def _loop(self, name: str, interval: float, work: Callable[[], int]) -> threading.Thread:
        def run() -> None:
            failures = 0
            while not self._stop.is_set():
                try:
                    work()
                    failures = 0
                    wait = interval
                except LOST as exc:
                    failures += 1
                    wait = min(interval, 0.5 * 2**failures)
                    logger.warning(
                        "beat %s could not reach the database (%s); retrying in %.1f s",
                        name,
                        str(exc).strip().splitlines()[0] if str(exc).strip() else exc,
                        wait,
                    )
                except Exception:
                    wait = interval
                    logger.exception(
                        "beat %s pass failed; the next pass runs in %.1f s", name, wait
                    )
                self._stop.wait(wait)

        return threading.Thread(target=run, name=f"gendurable-beat-{name}", daemon=True)

    def start(self) -> None:
        for line in self.scheduler.describe():
            logger.info("schedule %s", line)
        if not self.scheduler.schedules:
            logger.info("no periodic schedules declared")
        logger.info(
            "beat started: reaper every %.1f s, gc every %.1f s keeping finished rows %.0f s",
            self.app.settings.reaper_interval,
            self.app.settings.gc_interval,
            self.app.settings.gc_retention,
        )
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
