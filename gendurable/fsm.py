"""Durable state machines: a class of steps over a pydantic ``State``, one row per instance.

A step is a method ``(self, state, ctx)`` that returns an outcome. The engine commits the
outcome and the new state before the next step runs, so a crash re-runs only the step that
was interrupted, from the state the previous step committed.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, overload

import pydantic
import pydantic_core

from . import _registry
from ._definition import Backoff, Definition, default_backoff
from ._insert import (
    Insert,
    check_max_attempts,
    check_priority,
    check_queue_name,
    check_rate_limit,
    check_scope,
    check_seconds,
    check_weight,
    expiry,
    key_value,
    schedule,
)
from ._json import unstorable
from .errors import InvalidOption, InvalidOutcome, InvalidState, closest
from .outcomes import OUTCOME_TYPES, Outcome
from .schedules import Schedule

if TYPE_CHECKING:
    import psycopg

    from .app import App
    from .context import Context
    from .handle import Handle

F = TypeVar("F", bound=Callable[..., Any])

_STEP_MARK = "__gendurable_step__"
_START_OPTIONS = (
    "correlation_key",
    "concurrency_key",
    "queue",
    "priority",
    "countdown",
    "eta",
    "expires",
    "max_attempts",
    "timeout",
    "correlation_scope",
    "rate_limit",
    "weight",
)


@overload
def step(function: F, /) -> F: ...


@overload
def step(*, initial: bool = False) -> Callable[[F], F]: ...


def step(function: Any = None, /, *, initial: bool = False) -> Any:
    """Mark a method of an ``FSM`` subclass as a step; ``initial=True`` marks the first one."""

    def mark(method: F) -> F:
        if not callable(method):
            raise InvalidOption(f"@step decorates a method, got {method!r}")
        setattr(method, _STEP_MARK, {"initial": initial})
        return method

    return mark(function) if function is not None else mark


class _FSMDefinition(Definition):
    """The engine's view of one FSM class."""

    def __init__(self, cls: type[FSM]) -> None:
        self.cls = cls
        # Only a name set on this class counts: a subclass that inherited its base's name would
        # replace the base in the registry, and rows of the base would run the subclass.
        self.name = cls.__dict__.get("name") or f"{cls.__module__}.{cls.__qualname__}"
        self.queue = check_queue_name(cls.queue)
        self.priority = check_priority(cls.priority)
        self.max_attempts = check_max_attempts(cls.max_attempts)
        self.timeout = check_seconds("timeout", cls.timeout, positive=True)
        if cls.backoff is not None and not callable(cls.backoff):
            raise InvalidOption(
                f"FSM {self.name}: backoff must be a callable of the attempt number, got "
                f"{cls.backoff!r}"
            )
        self.backoff = cls.backoff or default_backoff
        self.correlation_scope = check_scope(cls.correlation_scope)
        self.steps: dict[str, Callable[..., Any]] = {}
        initial = []
        for attribute in dir(cls):
            member = getattr(cls, attribute, None)
            mark = getattr(member, _STEP_MARK, None)
            if mark is None:
                continue
            if hasattr(FSM, attribute):
                raise InvalidOption(
                    f"FSM {self.name}: the step {attribute!r} hides FSM.{attribute}; give the "
                    "step another name"
                )
            self.steps[attribute] = member  # type: ignore[assignment]
            if mark["initial"]:
                initial.append(attribute)
        if len(initial) != 1:
            found = ", ".join(initial) if initial else "none"
            raise InvalidOption(
                f"FSM {self.name} needs exactly one @step(initial=True), found {found}"
            )
        self.initial_step = initial[0]
        self._async = {name: inspect.iscoroutinefunction(fn) for name, fn in self.steps.items()}
        state_model = cls.__dict__.get("State") or getattr(cls, "State", None)
        if not (isinstance(state_model, type) and issubclass(state_model, pydantic.BaseModel)):
            raise InvalidOption(
                f"FSM {self.name} needs a nested pydantic model named State "
                "(class State(BaseModel): ...)"
            )
        self.state_model: type[pydantic.BaseModel] = state_model
        self.schedule: Schedule | None = None
        if cls.cron is not None or cls.every is not None:
            schedule_state = dict(cls.schedule_state or {})
            unknown = sorted(set(schedule_state) - set(state_model.model_fields))
            if unknown:
                raise InvalidOption(
                    f"schedule_state of periodic FSM {self.name} names {unknown[0]!r}, which is "
                    f"not a field of its State{closest(unknown[0], list(state_model.model_fields))}"
                )
            try:
                state_model.model_validate(schedule_state)
            except pydantic.ValidationError as exc:
                raise InvalidOption(
                    f"periodic FSM {self.name} cannot build its State from schedule_state "
                    f"{schedule_state!r}: {exc.errors(include_url=False)}; set schedule_state or "
                    "give the fields defaults"
                ) from None
            self.schedule = Schedule(
                name=self.name,
                target=self.name,
                cron=cls.cron,
                timezone=cls.timezone,
                every=check_seconds("every", cls.every, positive=True),
                kwargs=schedule_state,
                misfire=cls.misfire,  # type: ignore[arg-type]
                misfire_grace=cls.misfire_grace,
                misfire_limit=cls.misfire_limit,
            )

    def has_step(self, step: str) -> bool:
        return step in self.steps

    def is_async(self, step: str) -> bool:
        return self._async[step]

    def run_step(self, step: str, state: Any, ctx: Context) -> Any:
        return self.steps[step](self.cls(), state, ctx)

    async def run_step_async(self, step: str, state: Any, ctx: Context) -> Any:
        return await self.steps[step](self.cls(), state, ctx)

    def load_state(self, state: Any) -> Any:
        try:
            return self._validate_json(state)
        except pydantic.ValidationError as exc:
            raise InvalidState(
                f"the stored state of {self.name} no longer validates against its State model: "
                f"{exc.errors(include_url=False)}; fix the model or migrate the stored rows"
            ) from None

    def dump_state(self, state: Any) -> Any:
        """Return ``state`` (a State or a dict) as the JSON to store. Raise InvalidState
        unless that JSON loads again.

        ``model_copy(update=...)``, ``model_construct`` and attribute assignment skip
        validation, so a State instance is validated again here, as the next load will.
        """
        if isinstance(state, dict):
            try:
                state = self.state_model.model_validate(state)
            except pydantic.ValidationError as exc:
                raise InvalidState(
                    f"state {state!r} of {self.name} does not validate against its State "
                    f"model: {exc.errors(include_url=False)}"
                ) from None
        if not isinstance(state, self.state_model):
            raise InvalidState(
                f"state {state!r} of {self.name} is not an instance of "
                f"{self.state_model.__qualname__}; build it with "
                f"{self.cls.__name__}.State(...)"
            )
        try:
            # Without warnings: a wrongly typed field is reported below, as a validation error.
            loaded = state.model_dump(warnings=False)
            dumped = state.model_dump(mode="json", warnings=False)
        except pydantic_core.PydanticSerializationError as exc:
            raise InvalidState(
                f"state {state!r} of {self.name} is not JSON-serialisable: {exc}"
            ) from None
        problem = unstorable(loaded, "state") or unstorable(dumped, "state")
        if problem is not None:
            raise InvalidState(f"{self.name}: {problem}")
        try:
            self._validate_json(dumped)
        except pydantic.ValidationError as exc:
            raise InvalidState(
                f"state {state!r} of {self.name} does not validate against its State model: "
                f"{exc.errors(include_url=False)}"
            ) from None
        return dumped

    def _validate_json(self, stored: Any) -> pydantic.BaseModel:
        # The stored state is JSON, so it is validated as JSON: a strict model then accepts a
        # datetime stored as its ISO text, as it would from any JSON input.
        return self.state_model.model_validate_json(json.dumps(stored))

    def to_outcome(self, returned: Any) -> Outcome:
        if not isinstance(returned, OUTCOME_TYPES):
            raise InvalidOutcome(
                f"a step of {self.name} returned {returned!r}; a step returns Next, Retry, "
                "Await, Children, Done or Stop"
            )
        target = getattr(returned, "step", None)
        if target is not None and target not in self.steps:
            raise InvalidOutcome(
                f"{self.name} has no step {target!r}{closest(target, list(self.steps))}"
            )
        return returned


class FSM:
    """Base class of durable state machines. Subclass it with a nested ``State`` model and
    ``@step`` methods; class attributes set the defaults of every instance."""

    name: ClassVar[str | None] = None
    queue: ClassVar[str] = "default"
    priority: ClassVar[int] = 0
    max_attempts: ClassVar[int] = 20
    timeout: ClassVar[float | timedelta | None] = None
    backoff: ClassVar[Backoff | None] = None
    correlation_scope: ClassVar[list[str] | tuple[str, ...] | None] = None
    # Periodic starts: a cron expression in ``timezone`` or an interval in seconds, each
    # starting an instance with ``schedule_state`` (the State's defaults when None).
    cron: ClassVar[str | None] = None
    every: ClassVar[float | timedelta | None] = None
    timezone: ClassVar[str] = "UTC"
    misfire: ClassVar[str] = "latest"
    misfire_grace: ClassVar[float] = 60.0
    misfire_limit: ClassVar[int] = 100
    schedule_state: ClassVar[dict[str, Any] | None] = None
    _definition: ClassVar[_FSMDefinition]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("__abstract__", False):
            return
        definition = _FSMDefinition(cls)
        cls._definition = definition
        _registry.register(definition)

    @classmethod
    def new(cls, state: Any, **options: Any) -> Insert:
        """Build an unsaved start for ``app.insert_all`` or ``Children``."""
        definition = cls._definition
        unknown = set(options) - set(_START_OPTIONS)
        if unknown:
            option = sorted(unknown)[0]
            raise InvalidOption(
                f"unknown option {option!r} for {definition.name}"
                + closest(option, _START_OPTIONS)
                + f"; valid options: {', '.join(_START_OPTIONS)}"
            )
        if not isinstance(state, definition.state_model):
            raise InvalidState(
                f"{definition.name}.start takes a {definition.state_model.__qualname__}, got "
                f"{state!r}; build it with {cls.__name__}.State(...)"
            )
        delay, run_at = schedule(options.get("countdown"), options.get("eta"))
        expires_in, expires_at = expiry(options.get("expires"))
        queue = options.get("queue")
        priority = options.get("priority")
        max_attempts = options.get("max_attempts")
        timeout = options.get("timeout")
        rate_limit = options.get("rate_limit")
        partition = None
        if isinstance(rate_limit, tuple):
            if len(rate_limit) != 2:
                raise InvalidOption(
                    f"rate_limit must be a bucket name or (name, partition), got {rate_limit!r}"
                )
            rate_limit, partition = rate_limit
        rate_limit = check_rate_limit(rate_limit)
        weight = options.get("weight")

        def arguments() -> tuple[tuple[Any, ...], dict[str, Any]]:
            return (state,), {}

        return Insert(
            fsm=definition.name,
            step=definition.initial_step,
            state=definition.dump_state(state),
            queue=definition.queue if queue is None else check_queue_name(queue),
            priority=definition.priority if priority is None else check_priority(priority),
            max_attempts=(
                definition.max_attempts
                if max_attempts is None
                else check_max_attempts(max_attempts)
            ),
            timeout=(
                definition.timeout
                if timeout is None
                else check_seconds("timeout", timeout, positive=True)
            ),
            delay=delay,
            run_at=run_at,
            expires_at=expires_at,
            expires_in=expires_in,
            correlation_key=key_value("correlation_key", options.get("correlation_key"), arguments),
            correlation_scope=(
                definition.correlation_scope
                if options.get("correlation_scope") is None
                else check_scope(options["correlation_scope"])
            ),
            concurrency_key=key_value("concurrency_key", options.get("concurrency_key"), arguments),
            rate_limit=rate_limit,
            rate_partition=None if partition is None else str(partition),
            weight=1 if weight is None else check_weight(weight),
        )

    @classmethod
    def start(
        cls,
        state: Any,
        *,
        connection: psycopg.Connection[Any] | None = None,
        countdown: float | timedelta | None = None,
        eta: datetime | None = None,
        **options: Any,
    ) -> Handle:
        """Start an instance on the current app; return its handle."""
        from .app import current_app

        return current_app().start(
            cls, state, connection=connection, countdown=countdown, eta=eta, **options
        )

    @classmethod
    def _app(cls) -> App:
        from .app import current_app

        return current_app()
