"""Wakeups through Redis or RabbitMQ with kombu, for setups where NOTIFY does not reach the
workers (for example behind a transaction-pooling proxy).

Messages go to a fanout exchange; each worker binds an exclusive, auto-deleted queue, so every
worker hears every wakeup and nothing piles up while a worker is down. An insert made in the
caller's transaction publishes before that transaction commits: a worker woken too early finds
nothing and picks the row up at its next poll.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import kombu
from kombu.exceptions import KombuError

from ..errors import ConfigurationError

logger = logging.getLogger("gendurable.worker")

EXCHANGE = "gendurable.wakeup"
# Errors of kombu and of sockets; broker_errors adds the errors of each transport's client.
_BROKER_ERRORS: tuple[type[BaseException], ...] = (KombuError, OSError, ConnectionError)


def _exchange() -> kombu.Exchange:
    return kombu.Exchange(EXCHANGE, type="fanout", durable=False, auto_delete=False)


def _redact(url: str) -> str:
    """Return the URL without its password, for log lines."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        credentials, _, host = rest.rpartition("@")
        user = credentials.split(":", 1)[0]
        rest = f"{user}:***@{host}" if user else f"***@{host}"
    return f"{scheme}{sep}{rest}"


def broker_errors(url: str) -> tuple[type[BaseException], ...]:
    """Return the errors that mean the broker at ``url`` is unreachable or went away.

    Each transport raises its client library's own errors (redis-py's ConnectionError,
    py-amqp's ConnectionForced), which are neither KombuError nor OSError. Raises
    ConfigurationError when kombu has no transport for the URL's scheme.
    """
    try:
        connection = kombu.Connection(url)
        return (*_BROKER_ERRORS, *connection.connection_errors, *connection.channel_errors)
    except (KeyError, ImportError) as exc:
        reason = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        raise ConfigurationError(
            f"invalid wakeup channel {_redact(url)!r}: {reason}; set wakeup to 'postgres' or to "
            "a redis:// or amqp:// URL"
        ) from None


class KombuPublisher:
    """Publishes wakeups; a broker that is down costs a warning, never a failed insert."""

    needs_insert_wakeups = True

    def __init__(self, url: str) -> None:
        self._errors = broker_errors(url)
        self._url = url
        self._lock = threading.Lock()
        self._connection: kombu.Connection | None = None
        self._producer: Any = None
        self._last_warning = 0.0

    def _send(self, body: dict[str, Any]) -> None:
        with self._lock:
            try:
                if self._connection is None:
                    self._connection = kombu.Connection(self._url, connect_timeout=2)
                    self._producer = self._connection.Producer(serializer="json")
                self._producer.publish(
                    body,
                    exchange=_exchange(),
                    routing_key="",
                    declare=[_exchange()],
                    retry=True,
                    retry_policy={"max_retries": 1, "interval_start": 0.1},
                )
            except self._errors as exc:
                self._reset()
                now = time.monotonic()
                if now - self._last_warning > 10:
                    self._last_warning = now
                    logger.warning(
                        "could not publish a wakeup to %s (%s); workers will find the work at "
                        "their next poll",
                        _redact(self._url),
                        exc,
                    )

    def publish(self, queues: list[str]) -> None:
        if queues:
            self._send({"queues": queues})

    def publish_cancel(self, instance_id: int) -> None:
        self._send({"cancel": instance_id})

    def _reset(self) -> None:
        if self._connection is not None:
            try:
                self._connection.release()
            except Exception:
                logger.debug("releasing the wakeup connection failed", exc_info=True)
        self._connection = None
        self._producer = None

    def close(self) -> None:
        with self._lock:
            self._reset()


class KombuListener(threading.Thread):
    """Consumes wakeups for one worker; reconnects with backoff when the broker goes away."""

    def __init__(
        self,
        url: str,
        on_work: Callable[[str | None], None],
        on_cancel: Callable[[int], None],
        stop: threading.Event,
    ) -> None:
        super().__init__(name="gendurable-kombu-listener", daemon=True)
        self._errors = broker_errors(url)
        self._url = url
        self._on_work = on_work
        self._on_cancel = on_cancel
        self._halt = stop
        self.listening = threading.Event()
        self.connection: kombu.Connection | None = None

    def _handle(self, body: Any, message: Any) -> None:
        try:
            if isinstance(body, dict):
                for queue in body.get("queues", ()):
                    self._on_work(str(queue))
                if "cancel" in body:
                    self._on_cancel(int(body["cancel"]))
        finally:
            message.ack()

    def run(self) -> None:
        failures = 0
        while not self._halt.is_set():
            try:
                with kombu.Connection(self._url, connect_timeout=2) as connection:
                    self.connection = connection
                    queue = kombu.Queue(
                        f"gendurable.wakeup.{uuid.uuid4().hex}",
                        exchange=_exchange(),
                        exclusive=True,
                        auto_delete=True,
                        durable=False,
                    )
                    with connection.Consumer([queue], callbacks=[self._handle], accept=["json"]):
                        self.listening.set()
                        if failures:
                            logger.info("wakeup listener reconnected to %s", _redact(self._url))
                        failures = 0
                        # Wakeups sent while this listener was away are gone: look once.
                        self._on_work(None)
                        while not self._halt.is_set():
                            try:
                                connection.drain_events(timeout=0.5)
                            except TimeoutError:
                                connection.heartbeat_check()
            except self._errors as exc:
                if self._halt.is_set():
                    break
                failures += 1
                delay = min(0.1 * 2 ** (failures - 1), 5.0)
                logger.warning(
                    "wakeup listener lost %s (%s); reconnecting in %.1f s",
                    _redact(self._url),
                    exc,
                    delay,
                )
                self._halt.wait(delay)
            except Exception:
                # A dead listener would leave the worker on its polls alone, silently.
                failures += 1
                logger.exception("wakeup listener failed; restarting it in 1 s")
                self._halt.wait(1.0)
            finally:
                self.listening.clear()
                self.connection = None
