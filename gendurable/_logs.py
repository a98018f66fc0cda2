"""The default log handler: log records built from telemetry events.

Each record carries an ``event`` attribute and the event's metadata as stable snake_case
attributes (``fsm``, ``step``, ``instance_id``, ``attempt``, ``queue``, ``duration_ms``), so a
structured formatter can print them as fields. The level follows the outcome: a retried
attempt is a warning, a final failure an error with its traceback, deliberate outcomes debug.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from . import telemetry

logger = logging.getLogger("gendurable")

_FIELDS = ("fsm", "step", "instance_id", "attempt", "queue", "worker", "count", "outcome")


def _extra(
    event: str, measurements: Mapping[str, float], metadata: Mapping[str, Any]
) -> dict[str, Any]:
    extra: dict[str, Any] = {"event": event}
    for field in _FIELDS:
        if field in metadata:
            extra[field] = metadata[field]
    if "duration_ms" in measurements:
        extra["duration_ms"] = measurements["duration_ms"]
    return extra


def _handle(event: str, measurements: Mapping[str, float], metadata: Mapping[str, Any]) -> None:
    if event == "step.exception":
        final = metadata.get("final", False)
        level = logging.ERROR if final else logging.WARNING
        if not logger.isEnabledFor(level):
            return
        extra = _extra(event, measurements, metadata)
        if final:
            logger.error(
                "instance %s (%s, step %s) failed for good on attempt %s of %s: %s",
                metadata["instance_id"],
                metadata["fsm"],
                metadata["step"],
                metadata["attempt"],
                metadata.get("max_attempts"),
                metadata.get("error"),
                exc_info=metadata.get("exception"),
                extra=extra,
            )
        else:
            logger.warning(
                "instance %s (%s, step %s) failed on attempt %s of %s, retrying in %.1f s: %s",
                metadata["instance_id"],
                metadata["fsm"],
                metadata["step"],
                metadata["attempt"],
                metadata.get("max_attempts"),
                metadata.get("retry_in") or 0.0,
                metadata.get("error"),
                extra=extra,
            )
    elif event == "step.stop":
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "step %s.%s of instance %s ended with %s in %.1f ms",
                metadata["fsm"],
                metadata["step"],
                metadata["instance_id"],
                metadata["outcome"],
                measurements.get("duration_ms", 0.0),
                extra=_extra(event, measurements, metadata),
            )
    elif event == "step.start":
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "step %s.%s of instance %s started, attempt %s",
                metadata["fsm"],
                metadata["step"],
                metadata["instance_id"],
                metadata["attempt"],
                extra=_extra(event, measurements, metadata),
            )
    elif event == "reaper.rescued":
        logger.warning(
            "reaper rescued %d instances whose worker lease expired: %s",
            metadata["count"],
            metadata["ids"][:20],
            extra=_extra(event, measurements, metadata),
        )
    elif event == "gc.swept":
        logger.info(
            "gc deleted %d finished instances",
            metadata["count"],
            extra=_extra(event, measurements, metadata),
        )
    elif event == "worker.start":
        logger.info(
            "worker %s started on queues %s",
            metadata["worker"],
            metadata["queues"],
            extra=_extra(event, measurements, metadata),
        )
    elif event == "worker.drain":
        logger.info(
            "worker %s drained in %.0f ms: %d steps were running when it began, %d leases released",
            metadata["worker"],
            measurements.get("duration_ms", 0.0),
            metadata["running"],
            metadata["released"],
            extra=_extra(event, measurements, metadata),
        )
    elif event == "worker.stop":
        logger.info(
            "worker %s stopped", metadata["worker"], extra=_extra(event, measurements, metadata)
        )
    elif event == "beat.fired":
        if metadata.get("inserted"):
            logger.info(
                "schedule %s fired its tick %s as instance %s",
                metadata["schedule"],
                metadata["tick"].isoformat(),
                metadata.get("instance_id"),
                extra=_extra(event, measurements, metadata),
            )
        elif logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "schedule %s tick %s was fired by another beat",
                metadata["schedule"],
                metadata["tick"].isoformat(),
                extra=_extra(event, measurements, metadata),
            )
    elif event == "insert":
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "inserted %d instances of %s into queue %s",
                metadata["count"],
                metadata["fsm"],
                metadata["queue"],
                extra=_extra(event, measurements, metadata),
            )


_EVENTS = (
    "step.exception",
    "step.stop",
    "step.start",
    "reaper.rescued",
    "gc.swept",
    "worker.start",
    "worker.drain",
    "worker.stop",
    "insert",
    "beat.fired",
)


def install() -> None:
    """Attach the default log handler (idempotent)."""
    telemetry.attach("gendurable.logs", _EVENTS, _handle)
