"""Telemetry events: every action of the engine is an event, and logging is one view of them.

Handlers are called synchronously in the thread that emits the event, so they must be quick
and must not raise. An exception in a handler is logged, and the handler stays attached.

Events and their metadata:

================== ====================================================================
``insert``           fsm, queue, count (measurements: count)
``step.start``       fsm, step, instance_id, attempt, queue
``step.stop``        fsm, step, instance_id, attempt, queue, outcome (measurements: duration_ms)
``step.exception``   fsm, step, instance_id, attempt, queue, error, final, exception
``signal``           fsm, correlation_key, name, instance_id, woken (measurements: count)
``concurrency.contended`` attempt, detail (measurements: count)
``beat.fired``       schedule, tick, inserted, instance_id, queue (measurements: count)
``reaper.rescued``   ids, count (measurements: count)
``gc.swept``         count (measurements: count)
``worker.start``     worker, queues
``worker.drain``     worker, running, released (measurements: duration_ms)
``worker.stop``      worker
``worker.picked``    worker, ids (measurements: count)
``worker.applied``   worker, ids (measurements: count)
================== ====================================================================
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

Handler = Callable[[str, Mapping[str, float], Mapping[str, Any]], None]

_logger = logging.getLogger("gendurable.telemetry")
_lock = threading.Lock()
_handlers: dict[str, tuple[frozenset[str] | None, Handler]] = {}
# Rebuilt on every attach and detach, so that emitting reads one dict without a lock.
_by_event: dict[str, tuple[Handler, ...]] = {}
_for_all: tuple[Handler, ...] = ()


def attach(handler_id: str, events: Iterable[str] | None, handler: Handler) -> None:
    """Call ``handler(event, measurements, metadata)`` for ``events`` (every event when None).

    Attaching again under the same ``handler_id`` replaces the earlier handler.
    """
    with _lock:
        _handlers[handler_id] = (None if events is None else frozenset(events), handler)
        _rebuild()


def detach(handler_id: str) -> bool:
    """Remove a handler; return whether one was attached under that id."""
    with _lock:
        found = _handlers.pop(handler_id, None) is not None
        _rebuild()
        return found


def _rebuild() -> None:
    global _by_event, _for_all
    by_event: dict[str, list[Handler]] = {}
    for_all: list[Handler] = []
    for events, handler in _handlers.values():
        if events is None:
            for_all.append(handler)
        else:
            for event in events:
                by_event.setdefault(event, []).append(handler)
    _by_event = {event: tuple(handlers) for event, handlers in by_event.items()}
    _for_all = tuple(for_all)


def execute(event: str, measurements: Mapping[str, float], metadata: Mapping[str, Any]) -> None:
    """Emit one event to every handler attached to it."""
    for handler in _by_event.get(event, ()) + _for_all:
        try:
            handler(event, measurements, metadata)
        except Exception:
            _logger.exception("telemetry handler failed on event %s; it stays attached", event)


def has_handlers(event: str) -> bool:
    """Tell whether emitting ``event`` would reach anyone, so hot paths can skip building it."""
    return bool(_for_all) or event in _by_event
