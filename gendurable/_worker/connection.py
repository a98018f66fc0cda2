"""Dedicated connections for the worker's loops, re-opened with backoff when the server goes away."""

from __future__ import annotations

import logging
import threading
from typing import Any

import psycopg

logger = logging.getLogger("gendurable.worker")

Connection = psycopg.Connection[Any]

# Errors after which the connection is dropped and opened again; others are bugs and propagate.
LOST = (psycopg.OperationalError, psycopg.InterfaceError)


class Reconnecting:
    """One autocommit connection owned by one loop, re-opened with exponential backoff."""

    def __init__(self, conninfo: str, name: str, stop: threading.Event) -> None:
        self._conninfo = conninfo
        self._name = name
        self._stop = stop
        self._conn: Connection | None = None
        self._failures = 0

    def get(self) -> Connection:
        """Return an open connection, waiting with backoff until one can be opened or stop is set."""
        while self._conn is None or self._conn.closed:
            try:
                self._conn = psycopg.connect(
                    self._conninfo, autocommit=True, application_name=f"gendurable {self._name}"
                )
                # The worker's statements run thousands of times with parameters that do not
                # change their best plan, so planning them once saves a fraction of a
                # millisecond on every pick and outcome.
                self._conn.execute("SET plan_cache_mode = force_generic_plan")
                # JIT compiles a plan whose estimated cost passes a threshold; the generic plans
                # of a big table pass it and pay tens of milliseconds per pick for nothing.
                self._conn.execute("SET jit = off")
                if self._failures:
                    logger.info(
                        "%s reconnected to the database after %d failed tries",
                        self._name,
                        self._failures,
                    )
                self._failures = 0
            except LOST as exc:
                self.backoff(exc)
                if self._stop.is_set():
                    raise
        return self._conn

    def lost(self, exc: BaseException) -> None:
        """Drop the connection after an error and wait before the next try."""
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:
                logger.debug("closing the broken %s connection failed", self._name, exc_info=True)
        self._conn = None
        self.backoff(exc)

    def backoff(self, exc: BaseException) -> None:
        self._failures += 1
        delay = min(0.1 * 2 ** (self._failures - 1), 5.0)
        logger.warning(
            "%s lost its database connection (%s); retrying in %.1f s",
            self._name,
            str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
            delay,
        )
        self._stop.wait(delay)

    def close(self) -> None:
        if self._conn is not None and not self._conn.closed:
            self._conn.close()
        self._conn = None
