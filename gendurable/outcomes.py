"""Outcomes: the decision a step returns, which the engine commits before anything else runs.

A job that returns a plain value is ``Done(value)``; a raised exception is a ``Retry`` with
the backoff. ``state=None`` everywhere means "keep the state as it is".
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any

from ._insert import MAX_SECONDS
from .errors import InvalidOutcome

Delay = float | int | timedelta | None


def delay_seconds(delay: Delay, what: str) -> float | None:
    """Convert a delay given as seconds or a timedelta to seconds, rejecting negative ones,
    NaN, infinity and delays longer than ``MAX_SECONDS``."""
    if delay is None:
        return None
    if isinstance(delay, timedelta):
        seconds = delay.total_seconds()
    elif isinstance(delay, int | float) and not isinstance(delay, bool):
        seconds = float(delay)
    else:
        raise InvalidOutcome(
            f"{what} must be seconds or a timedelta, got {delay!r}; pass for example 30 or "
            "timedelta(minutes=5)"
        )
    if not math.isfinite(seconds) or seconds > MAX_SECONDS:
        raise InvalidOutcome(
            f"{what} must be a finite number of seconds up to {MAX_SECONDS:.0f} (1000 years), "
            f"got {delay!r}"
        )
    if seconds < 0:
        raise InvalidOutcome(f"{what} must not be negative, got {delay!r}")
    return seconds


@dataclasses.dataclass(frozen=True)
class Next:
    """Commit the state and move to ``step``, now or after ``delay``; attempts start again at 1."""

    step: str
    state: Any = None
    delay: Delay = dataclasses.field(default=None, kw_only=True)
    rate_limit: str | tuple[str, str] | None = dataclasses.field(default=None, kw_only=True)
    weight: int = dataclasses.field(default=1, kw_only=True)


@dataclasses.dataclass(frozen=True)
class Retry:
    """Run this step again with ``attempt + 1`` after ``delay`` (default: the backoff)."""

    delay: Delay = None
    state: Any = None


@dataclasses.dataclass(frozen=True)
class Await:
    """Wait until any of the named signals arrives, then run ``step``."""

    signals: Iterable[str]
    step: str
    state: Any = None
    timeout: Delay = dataclasses.field(default=None, kw_only=True)


@dataclasses.dataclass(frozen=True)
class Children:
    """Start ``children`` and run ``step`` once every one of them is terminal."""

    children: Sequence[Any]
    step: str
    state: Any = None


@dataclasses.dataclass(frozen=True)
class Done:
    """End the instance as ``done`` with ``result``."""

    result: Any = None
    state: Any = None


@dataclasses.dataclass(frozen=True)
class Stop:
    """End the instance as ``failed`` with ``reason``, without further attempts."""

    reason: str
    state: Any = None


Outcome = Next | Retry | Await | Children | Done | Stop
OUTCOME_TYPES = (Next, Retry, Await, Children, Done, Stop)
