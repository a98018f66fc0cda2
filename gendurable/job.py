"""``@durable_job``: a function that runs durably, with Celery's calling conventions.

A job is an FSM with one step, ``perform``. Its state is the call's arguments, validated
against the function's signature with pydantic when inserted and again when run.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

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
from .errors import InvalidArguments, InvalidOption, InvalidOutcome, closest
from .outcomes import OUTCOME_TYPES, Done, Outcome
from .schedules import Schedule

if TYPE_CHECKING:
    import psycopg

    from .app import App
    from .context import Context
    from .handle import Handle

P = ParamSpec("P")
R = TypeVar("R")

STEP = "perform"
_APPLY_OPTIONS = (
    "countdown",
    "eta",
    "queue",
    "priority",
    "max_attempts",
    "timeout",
    "expires",
    "correlation_key",
    "correlation_scope",
    "concurrency_key",
    "rate_limit",
    "weight",
)


class _Arguments:
    """The signature of a job function as a pydantic model, without its ``ctx`` parameter."""

    def __init__(self, function: Callable[..., Any], name: str) -> None:
        signature = inspect.signature(function)
        self.wants_ctx = "ctx" in signature.parameters
        self.full_signature = signature
        parameters = [p for p in signature.parameters.values() if p.name != "ctx"]
        self.signature = signature.replace(parameters=parameters)
        self.parameters = parameters
        fields: dict[str, Any] = {}
        for parameter in parameters:
            annotation = (
                Any if parameter.annotation is inspect.Parameter.empty else parameter.annotation
            )
            if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
                fields[parameter.name] = (list[annotation], [])  # type: ignore[valid-type]
            elif parameter.kind is inspect.Parameter.VAR_KEYWORD:
                fields[parameter.name] = (dict[str, annotation], {})  # type: ignore[valid-type]
            elif parameter.default is inspect.Parameter.empty:
                fields[parameter.name] = (annotation, ...)
            else:
                fields[parameter.name] = (annotation, parameter.default)
        self.model = pydantic.create_model(
            f"{name}.arguments",
            __config__=pydantic.ConfigDict(extra="forbid"),
            # String annotations (from __future__ import annotations) name types of the
            # function's module, so pydantic resolves them there.
            __module__=function.__module__,
            **fields,
        )

    def dump(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """Validate a call's arguments and return them as JSON, keyed by parameter name."""
        accepts_any_keyword = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in self.parameters)
        if not accepts_any_keyword:
            names = [p.name for p in self.parameters]
            for keyword in kwargs:
                if keyword not in names:
                    raise InvalidArguments(
                        f"{name}{self.signature} has no parameter {keyword!r}"
                        f"{closest(keyword, names)}; nothing was inserted"
                    )
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise InvalidArguments(
                f"arguments do not fit {name}{self.signature}: {exc}; nothing was inserted"
            ) from None
        try:
            validated = self.model.model_validate(dict(bound.arguments))
            # The Python form still contains NaN and infinity, which the JSON form turns into
            # null or into a token that PostgreSQL rejects. The JSON form contains bytes as text.
            loaded = validated.model_dump(exclude_unset=True)
            dumped: dict[str, Any] = validated.model_dump(mode="json", exclude_unset=True)
        except pydantic.ValidationError as exc:
            raise InvalidArguments(
                f"invalid arguments for {name}{self.signature}: {_short(exc)}; nothing was inserted"
            ) from None
        except pydantic_core.PydanticSerializationError as exc:
            raise InvalidArguments(
                f"arguments for {name} are not JSON-serialisable: {exc}; pass plain JSON values "
                "(str, int, float, bool, None, lists, dicts) or pydantic models; nothing was inserted"
            ) from None
        problem = unstorable(loaded, "arguments") or unstorable(dumped, "arguments")
        if problem is not None:
            raise InvalidArguments(f"invalid arguments for {name}: {problem}; nothing was inserted")
        return dumped

    def call_arguments(
        self, stored: dict[str, Any], ctx: Any = None
    ) -> tuple[list[Any], dict[str, Any]]:
        """Turn stored JSON arguments (and the context, if wanted) into a call's arguments."""
        validated = self.model.model_validate(stored)
        values = {}
        for parameter in self.full_signature.parameters.values():
            if parameter.name == "ctx":
                if self.wants_ctx:
                    values["ctx"] = ctx
            elif parameter.name in stored:
                values[parameter.name] = getattr(validated, parameter.name)
        # BoundArguments puts each parameter where its kind needs it: a parameter before
        # *args (or after a leading ctx) must go positionally, or the call gets "multiple
        # values" for it.
        bound = inspect.BoundArguments(self.full_signature, values)
        return list(bound.args), dict(bound.kwargs)


def _short(exc: pydantic.ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "arguments"
        parts.append(f"{where}: {error['msg']} (got {error.get('input')!r})")
    return "; ".join(parts)


class DurableJob(Definition, Generic[P, R]):
    """A function made durable by ``@durable_job``. Calling it directly runs it in-process."""

    initial_step = STEP

    def __init__(
        self,
        function: Callable[P, R],
        *,
        app: App | None = None,
        name: str | None = None,
        queue: str = "default",
        priority: int = 0,
        max_attempts: int = 20,
        backoff: Backoff | None = None,
        timeout: float | timedelta | None = None,
        rate_limit: str | None = None,
        weight: int = 1,
        correlation_key: str | Callable[..., str | None] | None = None,
        correlation_scope: list[str] | tuple[str, ...] | None = None,
        concurrency_key: str | Callable[..., str | None] | None = None,
        cron: str | None = None,
        every: float | timedelta | None = None,
        timezone: str = "UTC",
        misfire: str = "latest",
        misfire_grace: float = 60.0,
        misfire_limit: int = 100,
    ) -> None:
        self.function = function
        self.name = name or f"{function.__module__}.{function.__qualname__}"
        self.queue = check_queue_name(queue)
        self.priority = check_priority(priority)
        self.max_attempts = check_max_attempts(max_attempts)
        if backoff is not None and not callable(backoff):
            raise InvalidOption(
                f"backoff must be a callable of the attempt number, got {backoff!r}"
            )
        self.backoff = backoff or default_backoff
        self.timeout = check_seconds("timeout", timeout, positive=True)
        self.rate_limit = check_rate_limit(rate_limit)
        self.weight = check_weight(weight)
        self.correlation_key = correlation_key
        self.correlation_scope = check_scope(correlation_scope)
        self.concurrency_key = concurrency_key
        self._app = app
        self._async = inspect.iscoroutinefunction(function)
        self._arguments = _Arguments(function, self.name)
        self.__name__ = getattr(function, "__name__", self.name)
        self.__qualname__ = getattr(function, "__qualname__", self.name)
        self.__module__ = function.__module__
        self.__doc__ = function.__doc__
        self.__wrapped__ = function
        self.schedule: Schedule | None = None
        if cron is not None or every is not None:
            # A periodic job is called with no arguments, so every parameter needs a default.
            required = [
                p.name
                for p in self._arguments.parameters
                if p.default is inspect.Parameter.empty
                and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
            ]
            if required:
                raise InvalidOption(
                    f"periodic job {self.name} is called with no arguments, but its parameters "
                    f"{', '.join(repr(name) for name in required)} have no default; give them "
                    "defaults, or schedule it in App(beat_schedule=...) with args or kwargs"
                )
            self.schedule = Schedule(
                name=self.name,
                target=self.name,
                cron=cron,
                timezone=timezone,
                every=check_seconds("every", every, positive=True),
                misfire=misfire,  # type: ignore[arg-type]
                misfire_grace=misfire_grace,
                misfire_limit=misfire_limit,
            )
        _registry.register(self)

    def __repr__(self) -> str:
        return f"<durable_job {self.name} queue={self.queue!r}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.function(*args, **kwargs)

    @property
    def app(self) -> App:
        from .app import current_app

        return self._app if self._app is not None else current_app()

    # Calling conventions.

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> Handle:
        """Insert a call now, with the job's default options; return its handle."""
        return self.app.insert(self._build(args, kwargs, {}))

    def apply_async(
        self,
        args: tuple[Any, ...] | list[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        *,
        connection: psycopg.Connection[Any] | None = None,
        countdown: float | timedelta | None = None,
        eta: datetime | None = None,
        **options: Any,
    ) -> Handle:
        """Insert a call with options; with ``connection``, inside the caller's transaction."""
        # tuple("ab") would quietly make two arguments of one string.
        if args is not None and not isinstance(args, list | tuple):
            raise InvalidArguments(f"args of {self.name} must be a list or tuple, got {args!r}")
        if kwargs is not None and not isinstance(kwargs, Mapping):
            raise InvalidArguments(f"kwargs of {self.name} must be a dict, got {kwargs!r}")
        insert = self._build(
            tuple(args or ()), dict(kwargs or {}), {"countdown": countdown, "eta": eta, **options}
        )
        return self.app.insert(insert, connection=connection)

    def new(self, *args: Any, **kwargs: Any) -> Insert:
        """Build an unsaved insert for ``app.insert_all``.

        Options of ``apply_async`` are taken from keyword arguments with a leading underscore
        removed when they clash with the function's own parameters (``_queue=``), or as is.
        """
        options: dict[str, Any] = {}
        parameter_names = {p.name for p in self._arguments.parameters}
        for key in list(kwargs):
            option = key[1:] if key.startswith("_") else key
            if option in _APPLY_OPTIONS and (key.startswith("_") or key not in parameter_names):
                options[option] = kwargs.pop(key)
        return self._build(args, kwargs, options)

    def _build(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], options: dict[str, Any]
    ) -> Insert:
        unknown = set(options) - set(_APPLY_OPTIONS)
        if unknown:
            from .errors import closest

            name = sorted(unknown)[0]
            raise InvalidOption(
                f"unknown option {name!r} for {self.name}"
                + closest(name, _APPLY_OPTIONS)
                + f"; valid options: {', '.join(_APPLY_OPTIONS)}"
            )
        state = {"args": self._arguments.dump(self.name, args, kwargs)}
        delay, run_at = schedule(options.get("countdown"), options.get("eta"))
        expires_in, expires_at = expiry(options.get("expires"))
        queue = options.get("queue")
        priority = options.get("priority")
        max_attempts = options.get("max_attempts")
        timeout = options.get("timeout")

        def arguments() -> tuple[tuple[Any, ...], dict[str, Any]]:
            return args, kwargs

        return Insert(
            fsm=self.name,
            step=STEP,
            state=state,
            queue=self.queue if queue is None else check_queue_name(queue),
            priority=self.priority if priority is None else check_priority(priority),
            max_attempts=self.max_attempts
            if max_attempts is None
            else check_max_attempts(max_attempts),
            timeout=self.timeout
            if timeout is None
            else check_seconds("timeout", timeout, positive=True),
            delay=delay,
            run_at=run_at,
            expires_at=expires_at,
            expires_in=expires_in,
            correlation_key=key_value(
                "correlation_key", options.get("correlation_key", self.correlation_key), arguments
            ),
            correlation_scope=(
                self.correlation_scope
                if options.get("correlation_scope") is None
                else check_scope(options["correlation_scope"])
            ),
            concurrency_key=key_value(
                "concurrency_key", options.get("concurrency_key", self.concurrency_key), arguments
            ),
            rate_limit=(
                self.rate_limit
                if options.get("rate_limit") is None
                else check_rate_limit(options["rate_limit"])
            ),
            weight=self.weight
            if options.get("weight") is None
            else check_weight(options["weight"]),
        )

    # The engine's side.

    def has_step(self, step: str) -> bool:
        return step == STEP

    def is_async(self, step: str) -> bool:
        return self._async

    def _call(self, state: dict[str, Any], ctx: Context) -> tuple[list[Any], dict[str, Any]]:
        return self._arguments.call_arguments(state.get("args", {}), ctx)

    def run_step(self, step: str, state: Any, ctx: Context) -> Any:
        args, kwargs = self._call(state, ctx)
        return self.function(*args, **kwargs)

    async def run_step_async(self, step: str, state: Any, ctx: Context) -> Any:
        args, kwargs = self._call(state, ctx)
        return await self.function(*args, **kwargs)  # type: ignore[misc]

    def to_outcome(self, returned: Any) -> Outcome:
        if isinstance(returned, OUTCOME_TYPES) and getattr(returned, "state", None) is not None:
            raise InvalidOutcome(
                f"job {self.name} returned {returned!r} with a state; a job's state is its call "
                "arguments, so return the outcome without state="
            )
        if isinstance(returned, OUTCOME_TYPES):
            if hasattr(returned, "step") and returned.step != STEP:
                raise InvalidOutcome(
                    f"job {self.name} returned {returned!r}, but a job has only the step "
                    f"{STEP!r}; return a value, Retry, Done or Stop"
                )
            return returned
        return Done(returned)


@overload
def durable_job(function: Callable[P, R], /) -> DurableJob[P, R]: ...


@overload
def durable_job(
    function: None = None, /, **options: Any
) -> Callable[[Callable[P, R]], DurableJob[P, R]]: ...


def durable_job(function: Callable[P, R] | None = None, /, **options: Any) -> Any:
    """Make a function a durable job; use bare or with options (queue, priority, max_attempts...).

    The job uses the current app when called (``App.set_current``, or the most recent App);
    ``@app.durable_job`` binds it to one app.
    """
    valid = set(inspect.signature(DurableJob.__init__).parameters) - {"self", "function", "app"}
    for option in options:
        if option not in valid:
            from .errors import closest

            raise InvalidOption(
                f"unknown @durable_job option {option!r}"
                + closest(option, valid)
                + f"; valid options: {', '.join(sorted(valid))}"
            )
    if function is not None:
        if not callable(function):
            raise InvalidOption(f"@durable_job decorates a function, got {function!r}")
        return DurableJob(function, **options)

    def decorate(function: Callable[P, R]) -> DurableJob[P, R]:
        return DurableJob(function, **options)

    return decorate
