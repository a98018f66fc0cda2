"""The engine's interface to a job or FSM class: its name, defaults and steps.

A job is an FSM with one step, ``perform``; the picker, executor and outcome path treat both
the same through this interface.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .outcomes import Outcome

if TYPE_CHECKING:
    from .context import Context
    from .schedules import Schedule

Backoff = Callable[[int], float]

BACKOFF_BASE = 1.0
BACKOFF_CAP = 3600.0


def default_backoff(attempt: int) -> float:
    """Return the delay before the attempt after ``attempt``: exponential, capped, jittered.

    The delay doubles from one second up to an hour; half of it is random ("equal jitter"),
    so that many rows failing together do not come back together.
    """
    # The exponent stops growing long before the cap stops mattering, because 2.0 ** 1024
    # overflows a float and rows may allow that many attempts.
    ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2.0 ** min(max(attempt - 1, 0), 64))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


class Definition:
    """The engine's view of a ``@durable_job`` or an ``FSM`` subclass."""

    name: str
    queue: str = "default"
    priority: int = 0
    max_attempts: int = 20
    timeout: float | None = None
    backoff: Backoff = staticmethod(default_backoff)
    initial_step: str
    # Set on jobs and FSMs declared with cron= or every=.
    schedule: Schedule | None = None

    def has_step(self, step: str) -> bool:
        raise NotImplementedError

    def is_async(self, step: str) -> bool:
        raise NotImplementedError

    def run_step(self, step: str, state: Any, ctx: Context) -> Any:
        """Run one step synchronously and return what it returned (an outcome or a value)."""
        raise NotImplementedError

    async def run_step_async(self, step: str, state: Any, ctx: Context) -> Any:
        """Run one ``async def`` step and return what it returned."""
        raise NotImplementedError

    def load_state(self, state: Any) -> Any:
        """Turn the stored JSON state into what the step receives."""
        return state

    def dump_state(self, state: Any) -> Any:
        """Turn a state returned by a step into JSON for the row."""
        return state

    def to_outcome(self, returned: Any) -> Outcome:
        """Interpret what a step returned."""
        raise NotImplementedError
