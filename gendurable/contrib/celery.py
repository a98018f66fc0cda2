"""Celery's task decorator on gendurable, for moving a Celery project one task at a time.

    from gendurable.contrib.celery import shared_task

    @shared_task(bind=True, autoretry_for=(ConnectionError,), retry_backoff=True, max_retries=5)
    def send_welcome(self, user_id):
        ...

The result is a ``@durable_job``: ``.delay()`` and ``.apply_async()`` work as in Celery, and
the job runs on gendurable workers. Options, and what each means here:

- ``bind``: the function receives a task object first, with ``self.request`` (``id``,
  ``retries``, ``args``, ``kwargs``) and ``self.retry(exc=None, countdown=None,
  max_retries=None)``.
- ``name``, ``queue``, ``priority`` (0 runs first, up to 9, gendurable's order).
- ``max_retries`` (default 3, None for no limit), ``default_retry_delay`` (default 180 s).
- ``autoretry_for``, ``retry_backoff``, ``retry_backoff_max`` (600 s), ``retry_jitter``
  (True): exceptions of those types are retried with Celery's backoff. Any other exception
  fails the task at once, as in Celery.
- ``ignore_result`` and ``acks_late`` are accepted and change nothing: gendurable always
  stores the result and always acknowledges by the outcome's commit, after the task ran.
- ``rate_limit`` raises: this version of gendurable enforces no rate limits.
- Canvas (``.s()``, ``chain``, ``group``, ``chord``) is not provided; ``.s()`` raises.
"""

from __future__ import annotations

import functools
import inspect
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import Context
from .._worker.runner import FINAL_ATTRIBUTE, RETRY_IN_ATTRIBUTE
from ..errors import InvalidOption, closest
from ..job import DurableJob

# The largest attempt count PostgreSQL's integer holds: "retry forever" in practice.
_UNLIMITED_ATTEMPTS = 2_147_483_647

_HONOURED = {
    "bind", "name", "queue", "priority", "max_retries", "default_retry_delay",
    "autoretry_for", "retry_backoff", "retry_backoff_max", "retry_jitter",
}  # fmt: skip
_NO_EFFECT = {"ignore_result", "acks_late", "track_started", "serializer", "typing"}
_REJECTED = {
    "rate_limit": "this version of gendurable enforces no rate limits",
    "time_limit": "use gendurable's timeout= on @durable_job, in seconds per attempt",
    "soft_time_limit": "use gendurable's timeout= on @durable_job, in seconds per attempt",
    "base": "custom Task classes have no gendurable equivalent",
}


@dataclass
class Request:
    """The fields of Celery's ``self.request`` that bound tasks read."""

    id: int
    retries: int
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


class RetryRequested(Exception):
    """Raised by ``self.retry()``: the attempt is recorded as failed and retried after
    ``countdown`` seconds."""

    def __init__(self, countdown: float, cause: BaseException | None) -> None:
        reason = f"{type(cause).__qualname__}: {cause}" if cause else "no exception given"
        super().__init__(f"retry requested in {countdown} s ({reason})")
        self.countdown = countdown


class BoundTask:
    """The ``self`` of a bound task."""

    def __init__(self, name: str, request: Request, max_retries: int | None, delay: float) -> None:
        self.name = name
        self.request = request
        self.max_retries = max_retries
        self.default_retry_delay = delay

    def retry(
        self,
        exc: BaseException | None = None,
        countdown: float | None = None,
        max_retries: int | None = None,
        **options: Any,
    ) -> None:
        """Retry this task after ``countdown`` seconds; raises, as Celery's does."""
        if options:
            unknown = sorted(options)[0]
            raise InvalidOption(
                f"self.retry() got {unknown!r}, which gendurable does not take; pass exc, "
                "countdown and max_retries"
            )
        limit = self.max_retries if max_retries is None else max_retries
        if limit is not None and self.request.retries >= limit:
            if exc is not None:
                raise exc
            raise RuntimeError(f"{self.name} retried {self.request.retries} times, its maximum")
        raise RetryRequested(
            self.default_retry_delay if countdown is None else countdown, exc
        ) from exc


def _celery_backoff(retries: int, factor: int, maximum: float, jitter: bool) -> float:
    """Return Celery's retry_backoff countdown: factor * 2**retries, capped, then jittered."""
    countdown = min(maximum, factor * 2**retries)
    return float(random.randrange(int(countdown) + 1)) if jitter else float(countdown)


def shared_task(function: Callable[..., Any] | None = None, /, **options: Any) -> Any:
    """Make a function a durable job from Celery's task options."""
    for option in options:
        if option in _REJECTED:
            raise InvalidOption(f"Celery option {option}= cannot be honoured: {_REJECTED[option]}")
        if option not in _HONOURED | _NO_EFFECT:
            raise InvalidOption(
                f"unknown Celery task option {option!r}"
                + closest(option, sorted(_HONOURED | _NO_EFFECT))
            )

    def decorate(function: Callable[..., Any]) -> DurableJob[Any, Any]:
        return _wrap(function, options)

    return decorate(function) if function is not None else decorate


task = shared_task


def _wrap(function: Callable[..., Any], options: dict[str, Any]) -> DurableJob[Any, Any]:
    bind = bool(options.get("bind", False))
    name = options.get("name") or f"{function.__module__}.{function.__qualname__}"
    max_retries = options.get("max_retries", 3)
    delay = float(options.get("default_retry_delay", 180))
    autoretry_for = tuple(options.get("autoretry_for", ()))
    backoff = options.get("retry_backoff", False)
    factor = 1 if backoff is True else int(backoff or 0)
    backoff_max = float(options.get("retry_backoff_max", 600))
    jitter = bool(options.get("retry_jitter", True))
    signature = inspect.signature(function)
    parameters = (
        list(signature.parameters.values())[1:] if bind else list(signature.parameters.values())
    )

    def run(ctx: Context, *args: Any, **kwargs: Any) -> Any:
        retries = ctx.attempt - 1
        try:
            if bind:
                request = Request(ctx.id, retries, args, kwargs)
                return function(BoundTask(name, request, max_retries, delay), *args, **kwargs)
            return function(*args, **kwargs)
        except RetryRequested as requested:
            # Raised again with its cause, so the attempt's error and traceback are recorded.
            setattr(requested, RETRY_IN_ATTRIBUTE, requested.countdown)
            raise
        except Exception as exc:
            if autoretry_for and isinstance(exc, autoretry_for):
                countdown = (
                    _celery_backoff(retries, factor, backoff_max, jitter) if factor else delay
                )
                setattr(exc, RETRY_IN_ATTRIBUTE, countdown)
            else:
                # Celery fails a task at once on an exception that autoretry_for does not list.
                setattr(exc, FINAL_ATTRIBUTE, True)
            raise

    # The job's signature is the task's, without the bound self, plus gendurable's ctx.
    run.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD), *parameters]
    )
    functools.update_wrapper(run, function, assigned=("__module__", "__qualname__", "__doc__"))
    run.__annotations__ = {
        key: value
        for key, value in getattr(function, "__annotations__", {}).items()
        if key in {p.name for p in parameters}
    }
    attempts = _UNLIMITED_ATTEMPTS if max_retries is None else int(max_retries) + 1
    job: DurableJob[Any, Any] = DurableJob(
        run,
        name=name,
        queue=options.get("queue", "default"),
        priority=options.get("priority", 0),
        max_attempts=attempts,
    )
    job.s = _no_canvas  # type: ignore[attr-defined]
    job.si = _no_canvas  # type: ignore[attr-defined]
    return job


def _no_canvas(*args: Any, **kwargs: Any) -> Any:
    raise InvalidOption(
        "Celery signatures (.s(), .si()) and canvas (chain, group, chord) are not provided by "
        "this version of gendurable; call .delay() or .apply_async(), or model the workflow "
        "as an FSM with Next and Children"
    )
