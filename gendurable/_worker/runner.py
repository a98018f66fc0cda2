"""Run one attempt of one step and turn what happened into an outcome record.

Shared by worker processes and ``app.drain()``, so tests exercise the worker's code path.
Nothing here touches the database: the record is applied by the caller, as the lease holder.
"""

from __future__ import annotations

import dataclasses
import math
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pydantic_core

from .. import _registry, telemetry
from .._definition import Definition
from .._insert import MAX_SECONDS, Insert
from .._json import unstorable, without_nul
from .._store import OutcomeRecord, PickedRow
from ..context import Child, Context, Signal
from ..errors import InvalidOutcome, InvalidState, StepTimeout, UnknownJob, UnknownQueue
from ..outcomes import Await, Children, Done, Next, Retry, Stop, delay_seconds
from ..status import Status

if TYPE_CHECKING:
    from ..app import App


class Attempt:
    """One leased row on its way through a step: its context and how it ended."""

    __slots__ = ("cancelled_by_worker", "ctx", "definition", "error", "reported", "row", "started")

    def __init__(self, row: PickedRow, app: App) -> None:
        self.row = row
        self.definition: Definition | None = None
        self.error: BaseException | None = None
        self.started = 0.0
        self.cancelled_by_worker = False
        self.reported = False
        signals = _signals(row.signals)
        awaited = set(row.awaited_signals or ())
        self.ctx = Context(
            id=row.id,
            fsm=row.fsm,
            step=row.step,
            attempt=row.attempt,
            max_attempts=row.max_attempts,
            queue=row.queue,
            correlation_key=row.correlation_key,
            inserted_at=row.inserted_at,
            app=app,
            errors=row.errors,
            awaited=[signal for signal in signals if signal.name in awaited],
            all=signals,
            children=_children(row.children),
        )

    def resolve(self, include: tuple[str, ...]) -> Definition | None:
        """Find the step's definition; on failure remember the error and return None."""
        try:
            definition = _registry.resolve(self.row.fsm, include)
            if not definition.has_step(self.row.step):
                raise InvalidOutcome(
                    f"{self.row.fsm} has no step {self.row.step!r}; the stored row names a step "
                    "the class no longer defines"
                )
        except (UnknownJob, InvalidOutcome) as exc:
            self.error = exc
            return None
        self.definition = definition
        return definition

    def metadata(self) -> dict[str, Any]:
        row = self.row
        return {
            "fsm": row.fsm,
            "step": row.step,
            "instance_id": row.id,
            "attempt": row.attempt,
            "max_attempts": row.max_attempts,
            "queue": row.queue,
            "correlation_key": row.correlation_key,
            "concurrency_key": row.concurrency_key,
        }


def _signals(rows: list[dict[str, Any]] | None) -> list[Signal]:
    if not rows:
        return []
    return [
        Signal(row["id"], row["name"], row["payload"], datetime.fromisoformat(row["received_at"]))
        for row in rows
    ]


def _children(rows: list[dict[str, Any]] | None) -> list[Child]:
    if not rows:
        return []
    return [
        Child(
            row["id"],
            row["fsm"],
            Status(row["status"]),
            row["result"],
            (row.get("error") or {}).get("error"),
        )
        for row in rows
    ]


def run_sync(attempt: Attempt) -> Any:
    """Run the step in this thread and return what it returned (raises what it raised)."""
    definition = attempt.definition
    assert definition is not None
    state = definition.load_state(attempt.row.state)
    return definition.run_step(attempt.row.step, state, attempt.ctx)


async def run_async(attempt: Attempt) -> Any:
    definition = attempt.definition
    assert definition is not None
    state = definition.load_state(attempt.row.state)
    return await definition.run_step_async(attempt.row.step, state, attempt.ctx)


def start(attempt: Attempt) -> None:
    attempt.started = time.perf_counter()
    if telemetry.has_handlers("step.start"):
        telemetry.execute("step.start", {}, attempt.metadata())


def finish(attempt: Attempt, returned: Any, error: BaseException | None) -> OutcomeRecord:
    """Turn a step's return value or exception into the record to apply."""
    row = attempt.row
    definition = attempt.definition
    if error is None and definition is not None:
        try:
            return _record(attempt, definition, definition.to_outcome(returned))
        except Exception as exc:
            # A bad outcome is the step's fault, like an exception: retried, then failed.
            error = exc
    error = error or attempt.error or RuntimeError("the step did not run")
    # A state that no longer validates, or an outcome the engine cannot store or follow, is a
    # programming error: running the step again would repeat its side effects for nothing.
    # An integration (the Celery decorator) may mark an exception final or give its delay.
    final = (
        row.attempt >= row.max_attempts
        or isinstance(error, InvalidState | InvalidOutcome)
        or getattr(error, FINAL_ATTRIBUTE, False) is True
    )
    record_error = _error_record(row, error)
    delay = None
    if not final:
        requested = getattr(error, RETRY_IN_ATTRIBUTE, None)
        if isinstance(requested, int | float) and math.isfinite(requested) and requested >= 0:
            delay = min(float(requested), MAX_SECONDS)
        else:
            backoff = definition.backoff if definition is not None else _fallback_backoff
            delay = _safe_backoff(backoff, row.attempt)
    if telemetry.has_handlers("step.exception"):
        telemetry.execute(
            "step.exception",
            {"duration_ms": (time.perf_counter() - attempt.started) * 1000},
            attempt.metadata()
            | {
                "error": record_error["error"],
                "final": final,
                "exception": error,
                "retry_in": delay,
            },
        )
    if delay is None:
        return OutcomeRecord(row.id, Status.FAILED, row.attempted_at, error=record_error)
    return OutcomeRecord(
        row.id, Status.AVAILABLE, row.attempted_at, delay=delay, error=record_error
    )


# Attributes an integration may set on an exception a step raises: fail without retrying, or
# retry after this many seconds instead of the backoff. The error is recorded either way.
FINAL_ATTRIBUTE = "__gendurable_final__"
RETRY_IN_ATTRIBUTE = "__gendurable_retry_in__"


def _fallback_backoff(attempt: int) -> float:
    from .._definition import default_backoff

    return default_backoff(attempt)


def _safe_backoff(backoff: Callable[[int], float], attempt: int) -> float:
    """Return the delay from a custom backoff, else from the default backoff.

    The default is used when the custom one raises or returns NaN, infinity or more than
    ``MAX_SECONDS``, because the database cannot schedule those.
    """
    try:
        delay = float(backoff(attempt))
    except Exception:
        delay = math.nan
    if not math.isfinite(delay) or delay > MAX_SECONDS:
        from .._definition import default_backoff

        return default_backoff(attempt)
    return max(delay, 0.0)


def _error_record(row: PickedRow, error: BaseException) -> dict[str, Any]:
    try:
        text = str(error)
    except Exception:
        # An exception whose __str__ fails must still be recorded.
        text = f"<{type(error).__qualname__} whose message could not be read>"
    if isinstance(error, StepTimeout):
        message = text or f"the attempt ran longer than its timeout of {row.timeout} s"
    else:
        message = f"{type(error).__module__}.{type(error).__qualname__}: {text}"
        message = message.removeprefix("builtins.")
    try:
        formatted = "".join(traceback.format_exception(error))[-8000:]
    except Exception:
        formatted = ""
    # An exception's message may hold any text, and jsonb cannot store a NUL character.
    return {
        "at": datetime.now(UTC).isoformat(),
        "attempt": row.attempt,
        "step": row.step,
        "error": without_nul(message),
        "traceback": without_nul(formatted),
    }


def _json(value: Any, what: str) -> Any:
    try:
        jsonable = pydantic_core.to_jsonable_python(value)
    except pydantic_core.PydanticSerializationError as exc:
        raise InvalidOutcome(f"{what} is not JSON-serialisable: {exc}") from None
    problem = unstorable(value, what) or unstorable(jsonable, what)
    if problem is not None:
        raise InvalidOutcome(problem)
    return jsonable


def _record(attempt: Attempt, definition: Definition, outcome: Any) -> OutcomeRecord:
    row = attempt.row
    record = OutcomeRecord(row.id, Status.AVAILABLE, row.attempted_at)
    state = getattr(outcome, "state", None)
    if state is not None:
        record.state = _json(definition.dump_state(state), f"the state returned by {row.fsm}")
        record.state_changed = True
    if isinstance(outcome, Done):
        record.status = Status.DONE
        record.result = _json(outcome.result, f"the result of {row.fsm}")
    elif isinstance(outcome, Stop):
        record.status = Status.FAILED
        record.error = {
            "at": datetime.now(UTC).isoformat(),
            "attempt": row.attempt,
            "step": row.step,
            "error": without_nul(f"stopped: {outcome.reason}"),
        }
    elif isinstance(outcome, Retry):
        if row.attempt >= row.max_attempts:
            record.status = Status.FAILED
            record.error = {
                "at": datetime.now(UTC).isoformat(),
                "attempt": row.attempt,
                "step": row.step,
                "error": f"Retry returned on the last of {row.max_attempts} attempts",
            }
        else:
            delay = delay_seconds(outcome.delay, "Retry delay")
            record.delay = (
                _safe_backoff(definition.backoff, row.attempt) if delay is None else delay
            )
    elif isinstance(outcome, Next):
        if outcome.rate_limit is not None or outcome.weight != 1:
            raise InvalidOutcome(
                f"{row.fsm}.{row.step} returned Next with rate_limit={outcome.rate_limit!r} and "
                f"weight={outcome.weight!r}; this version does not enforce rate limits, so "
                "return Next without them"
            )
        if not definition.has_step(outcome.step):
            raise InvalidOutcome(
                f"{row.fsm}.{row.step} returned Next({outcome.step!r}), which is not a step"
            )
        record.step = outcome.step
        record.reset_attempt = True
        record.delay = delay_seconds(outcome.delay, "Next delay") or 0.0
    elif isinstance(outcome, Await):
        names = [outcome.signals] if isinstance(outcome.signals, str) else list(outcome.signals)
        if not names or not all(isinstance(name, str) and name for name in names):
            raise InvalidOutcome(
                f"{row.fsm}.{row.step} returned Await with signals {outcome.signals!r}; name at "
                "least one signal, as non-empty strings"
            )
        record.status = Status.AWAITING
        record.step = outcome.step
        record.reset_attempt = True
        record.awaited = sorted(set(names))
        record.delay = delay_seconds(outcome.timeout, "Await timeout")
    elif isinstance(outcome, Children):
        children = list(outcome.children)
        for child in children:
            if not isinstance(child, Insert):
                raise InvalidOutcome(
                    f"{row.fsm}.{row.step} returned Children with {child!r}; build each child "
                    "with job.new(...) or SomeFSM.new(state)"
                )
            try:
                attempt.ctx.app.check_queue(child.queue)
            except UnknownQueue as exc:
                raise InvalidOutcome(f"{row.fsm}.{row.step} returned Children: {exc}") from None
        record.status = Status.AWAITING
        record.step = outcome.step
        record.reset_attempt = True
        record.joining = True
        record.children = [dataclasses.replace(child, parent_id=row.id) for child in children]
    else:
        raise InvalidOutcome(f"{row.fsm}.{row.step} returned {outcome!r}, which is not an outcome")
    # Progress (Next, Await, Children) consumes exactly the signals this step was shown as
    # awaited. A Retry keeps them for the next attempt, and a terminal outcome clears the inbox.
    if record.reset_attempt and attempt.ctx.awaited:
        record.consumed = [signal.id for signal in attempt.ctx.awaited]
    if telemetry.has_handlers("step.stop"):
        telemetry.execute(
            "step.stop",
            {"duration_ms": (time.perf_counter() - attempt.started) * 1000},
            attempt.metadata() | {"outcome": type(outcome).__name__},
        )
    return record
