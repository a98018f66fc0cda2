"""Reports step exceptions to Sentry, tagged with the instance's fsm, step, attempt and keys.

    import sentry_sdk
    from gendurable.contrib.sentry import attach

    sentry_sdk.init(dsn=...)
    attach()                 # final failures only
    attach(every_attempt=True)  # also attempts that will be retried

Install with the ``sentry`` extra: ``pip install "gendurable[sentry]"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import telemetry

HANDLER_ID = "gendurable.contrib.sentry"


def attach(*, every_attempt: bool = False) -> None:
    """Send step exceptions to the Sentry client set up with ``sentry_sdk.init``.

    With ``every_attempt=False`` only failures that end the instance are sent; a retried
    attempt adds a breadcrumb instead, so the final report shows the attempts before it.
    """
    import sentry_sdk

    def report(event: str, measurements: Mapping[str, float], metadata: Mapping[str, Any]) -> None:
        final = bool(metadata.get("final"))
        if not final and not every_attempt:
            sentry_sdk.add_breadcrumb(
                category="gendurable",
                level="warning",
                message=f"{metadata['fsm']}.{metadata['step']} attempt {metadata['attempt']} "
                f"failed: {metadata.get('error')}",
            )
            return
        with sentry_sdk.new_scope() as scope:
            scope.set_tag("gendurable.fsm", metadata["fsm"])
            scope.set_tag("gendurable.step", metadata["step"])
            scope.set_tag("gendurable.queue", metadata.get("queue"))
            scope.set_tag("gendurable.attempt", metadata["attempt"])
            scope.set_tag("gendurable.final", final)
            scope.set_context(
                "gendurable",
                {
                    "instance_id": metadata["instance_id"],
                    "max_attempts": metadata.get("max_attempts"),
                    "correlation_key": metadata.get("correlation_key"),
                    "concurrency_key": metadata.get("concurrency_key"),
                    "duration_ms": measurements.get("duration_ms"),
                },
            )
            exception = metadata.get("exception")
            if isinstance(exception, BaseException):
                sentry_sdk.capture_exception(exception)
            else:
                sentry_sdk.capture_message(str(metadata.get("error")), level="error")

    telemetry.attach(HANDLER_ID, ["step.exception"], report)


def detach() -> bool:
    """Stop reporting; return whether reporting was on."""
    return telemetry.detach(HANDLER_ID)
