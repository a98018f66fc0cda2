"""The app: settings, the connection pool, queue configuration, and the calls users make."""

from __future__ import annotations

import collections
import dataclasses
import inspect
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import psycopg
from psycopg_pool import ConnectionPool

from . import _logs, embedded, telemetry
from ._insert import Insert, check_queue_name
from ._store import Store
from .errors import (
    ConfigurationError,
    GendurableError,
    InstanceConflict,
    InvalidOption,
    NoSuchInstance,
    UnknownQueue,
    closest,
)
from .handle import Handle
from .settings import Settings
from .status import Status

if TYPE_CHECKING:
    from .fsm import FSM

P = ParamSpec("P")
R = TypeVar("R")

logger = logging.getLogger("gendurable")

_current: App | None = None
_current_lock = threading.Lock()


@dataclasses.dataclass(frozen=True)
class Queue:
    """A queue's defaults: per-process ``concurrency`` and an optional cluster-wide ``global_limit``."""

    concurrency: int = 10
    global_limit: int | None = None

    def __post_init__(self) -> None:
        if not _is_count(self.concurrency) or self.concurrency > MAX_CONCURRENCY:
            raise InvalidOption(
                f"Queue concurrency must be an integer from 1 to {MAX_CONCURRENCY}, got "
                f"{self.concurrency!r}"
            )
        if self.global_limit is not None and not _is_count(self.global_limit):
            raise InvalidOption(
                f"Queue global_limit must be None or an integer of at least 1, got {self.global_limit!r}"
            )


# A worker runs a thread per slot of its sync steps; beyond this a typo (an extra zero) would
# exhaust the host's threads or memory. Run more worker processes for more parallelism.
MAX_CONCURRENCY = 1000


def _is_count(value: object) -> bool:
    # bool is a subclass of int, but True is no concurrency.
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def current_app() -> App:
    """Return the app made current last (``set_current``), else the most recently created one."""
    if _current is None:
        raise ConfigurationError(
            "no gendurable App exists yet: create one (app = App(...)) before calling .delay() "
            "or .apply_async(), or decorate with @app.durable_job"
        )
    return _current


class App:
    """Entry point of gendurable: settings, the connection pool, inserts, drain and cancel."""

    def __init__(
        self,
        database_url: str | None = None,
        *,
        queues: dict[str, Queue | int] | None = None,
        include: Iterable[str] | None = None,
        beat_schedule: dict[str, dict[str, Any]] | None = None,
        **settings: Any,
    ) -> None:
        global _current
        if database_url is not None:
            settings["database_url"] = database_url
        try:
            self.settings = Settings(**settings)
        except Exception as exc:
            from pydantic import ValidationError

            if isinstance(exc, ValidationError):
                valid = list(Settings.model_fields)
                problems = []
                for error in exc.errors():
                    name = str(error["loc"][0]) if error["loc"] else "settings"
                    hint = closest(name, valid) if error["type"] == "extra_forbidden" else ""
                    problems.append(f"{name}: {error['msg']} (got {error.get('input')!r}){hint}")
                raise ConfigurationError("invalid App settings: " + "; ".join(problems)) from None
            raise
        self.queues: dict[str, Queue] = {
            check_queue_name(name): value if isinstance(value, Queue) else Queue(concurrency=value)
            for name, value in (queues or {}).items()
        }
        self.include = tuple(include) if include is not None else _caller_package()
        # Celery's format: {"name": {"task": ..., "schedule": crontab(...) | timedelta | seconds,
        # "args": ..., "kwargs": ..., "options": ...}}; beat reads it when it starts.
        self.beat_schedule: dict[str, dict[str, Any]] = dict(beat_schedule or {})
        self._wakeup: Any = None
        self._pool: ConnectionPool[psycopg.Connection[Any]] | None = None
        self._pool_lock = threading.Lock()
        self._url: str | None = self.settings.database_url
        self._store_instance: Store | None = None
        _logs.install()
        with _current_lock:
            _current = self

    def __repr__(self) -> str:
        return f"<App include={self.include!r} queues={list(self.queues)!r}>"

    def set_current(self) -> App:
        """Make this app the one that ``@durable_job`` functions use; return it."""
        global _current
        with _current_lock:
            _current = self
        return self

    # Database.

    @property
    def database_url(self) -> str:
        if self._url is None:
            self._url = embedded.database_url(self.settings.data_dir)
        return self._url

    def check_database(self) -> None:
        """Connect once and check the schema, failing fast with what to do.

        Raises DatabaseUnavailable when the server cannot be reached (with its message) and
        MigrationError when the database has no gendurable schema or an older one.
        """
        from .errors import MigrationError
        from .migrate import current_version, latest_version

        url = self.database_url
        try:
            with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
                version = current_version(conn)
        except psycopg.Error as exc:
            raise _unavailable(url, exc) from None
        if version is None or version < latest_version():
            found = "no gendurable schema" if version is None else f"schema version {version}"
            raise MigrationError(
                f"the database at {_redact(url)} has {found}; run `gendurable migrate -A "
                "module:app` (or app.migrate()) first"
            )

    @property
    def pool(self) -> ConnectionPool[psycopg.Connection[Any]]:
        with self._pool_lock:
            if self._pool is None:
                self.check_database()
                self._pool = ConnectionPool(
                    self.database_url,
                    min_size=1,
                    max_size=self.settings.pool_size,
                    kwargs={"autocommit": True, "application_name": "gendurable app"},
                    open=True,
                    name="gendurable",
                )
            return self._pool

    @property
    def _store(self) -> Store:
        if self._store_instance is None:
            self._store_instance = Store(self.pool)
        return self._store_instance

    @property
    def wakeup(self) -> Any:
        """The wakeup channel: publishes "work is due in this queue" to workers."""
        if self._wakeup is None:
            from ._wakeup import channel

            self._wakeup = channel(self)
        return self._wakeup

    def wake(self, queues: Iterable[str]) -> None:
        """Tell workers of ``queues`` that rows may be due (a hint: losing it costs one poll)."""
        self.wakeup.publish(sorted(set(queues)))

    def close(self) -> None:
        """Close the connection pool (the embedded server stops when its last process exits)."""
        with self._pool_lock:
            if self._wakeup is not None:
                self._wakeup.close()
                self._wakeup = None
            if self._pool is not None:
                self._pool.close()
                self._pool = None
                self._store_instance = None

    def migrate(self) -> list[str]:
        """Apply pending migrations; return the names of those applied."""
        from .migrate import migrate

        url = self.database_url
        try:
            return [f"{m.version:04d}_{m.name}" for m in migrate(url)]
        except psycopg.OperationalError as exc:
            raise _unavailable(url, exc) from None

    # Jobs.

    def durable_job(self, function: Callable[P, R] | None = None, /, **options: Any) -> Any:
        """Like ``@durable_job``, bound to this app."""
        from .job import DurableJob, durable_job

        if function is not None:
            job = durable_job(function, **options)
            job._app = self
            return job

        def decorate(function: Callable[P, R]) -> DurableJob[P, R]:
            job: DurableJob[P, R] = durable_job(function, **options)
            job._app = self
            return job

        return decorate

    def known_queues(self) -> set[str]:
        from . import _registry

        return {"default"} | set(self.queues) | _registry.known_queues()

    def check_queue(self, queue: str) -> str:
        known = self.known_queues()
        if queue not in known:
            raise UnknownQueue(
                f"unknown queue {queue!r}{closest(queue, known)}; known queues: "
                f"{', '.join(sorted(known))}. Declare it in App(queues={{...}}) or on a job"
            )
        return queue

    def global_limit(self, queue: str) -> int | None:
        config = self.queues.get(queue)
        return None if config is None else config.global_limit

    def insert(self, insert: Insert, connection: psycopg.Connection[Any] | None = None) -> Handle:
        """Write one unsaved insert; with ``connection``, inside the caller's transaction."""
        self.check_queue(insert.queue)
        instance_id, inserted = self._store.insert(insert, connection)
        if inserted and self.wakeup.needs_insert_wakeups:
            self.wakeup.publish([insert.queue])
        if telemetry.has_handlers("insert"):
            telemetry.execute(
                "insert", {"count": 1}, {"fsm": insert.fsm, "queue": insert.queue, "count": 1}
            )
        return Handle(self, instance_id, inserted)

    def insert_all(
        self, inserts: Sequence[Insert], connection: psycopg.Connection[Any] | None = None
    ) -> list[Handle]:
        """Write many unsaved inserts in one transaction; return their handles in order."""
        inserts = list(inserts)
        for item in inserts:
            if not isinstance(item, Insert):
                raise InvalidOption(
                    f"insert_all takes unsaved inserts built with job.new(...), got {item!r}"
                )
        for queue in {item.queue for item in inserts}:
            self.check_queue(queue)
        results = self._store.insert_many(inserts, connection)
        if inserts and self.wakeup.needs_insert_wakeups:
            self.wakeup.publish(sorted({item.queue for item in inserts}))
        if inserts and telemetry.has_handlers("insert"):
            # One event per job and queue, so that a mixed batch is not counted as its first.
            groups = collections.Counter((item.fsm, item.queue) for item in inserts)
            for (fsm, queue), count in groups.items():
                telemetry.execute(
                    "insert", {"count": count}, {"fsm": fsm, "queue": queue, "count": count}
                )
        return [Handle(self, instance_id, inserted) for instance_id, inserted in results]

    def start(
        self,
        fsm: type[FSM],
        state: Any,
        *,
        connection: psycopg.Connection[Any] | None = None,
        **options: Any,
    ) -> Handle:
        """Start an instance of ``fsm`` with ``state``; with ``connection``, in that transaction."""
        from .fsm import FSM

        if not (isinstance(fsm, type) and issubclass(fsm, FSM)):
            raise InvalidOption(f"start takes an FSM subclass, got {fsm!r}")
        return self.insert(fsm.new(state, **options), connection=connection)

    def signal(
        self,
        fsm: type[FSM] | str,
        correlation_key: str,
        name: str,
        payload: Any = None,
        *,
        strict: bool = False,
        connection: psycopg.Connection[Any] | None = None,
    ) -> bool:
        """Send signal ``name`` to the live instance of ``fsm`` with ``correlation_key``.

        Returns whether an instance received it; with ``strict=True`` raises NoSuchInstance
        instead of returning False. Nothing is written when no instance receives it.
        """
        from .fsm import FSM

        fsm_name = fsm._definition.name if isinstance(fsm, type) and issubclass(fsm, FSM) else fsm
        if not isinstance(fsm_name, str) or not fsm_name:
            raise InvalidOption(f"signal takes an FSM subclass or its name, got {fsm!r}")
        if not isinstance(name, str) or not name:
            raise InvalidOption(f"a signal name must be a non-empty string, got {name!r}")
        if not isinstance(correlation_key, str) or not correlation_key:
            raise InvalidOption(
                f"a correlation key must be a non-empty string, got {correlation_key!r}"
            )
        payload = json_payload(payload)
        delivered = self._store.signal(fsm_name, correlation_key, name, payload, connection)
        if delivered and delivered[3] and self.wakeup.needs_insert_wakeups:
            self.wake([delivered[2]])
        telemetry.execute(
            "signal",
            {"count": 1 if delivered else 0},
            {
                "fsm": fsm_name,
                "correlation_key": correlation_key,
                "name": name,
                "instance_id": delivered[0] if delivered else None,
                "woken": bool(delivered and delivered[3]),
            },
        )
        if delivered is None and strict:
            raise NoSuchInstance(
                f"no live instance of {fsm_name} has correlation key {correlation_key!r}; "
                f"signal {name!r} was not delivered"
            )
        return delivered is not None

    def handle(self, instance_id: int) -> Handle:
        """Return a handle on an existing instance."""
        if not isinstance(instance_id, int) or isinstance(instance_id, bool) or instance_id < 1:
            raise InvalidOption(f"an instance id is a positive integer, got {instance_id!r}")
        return Handle(self, instance_id, inserted=False)

    def cancel(self, instance_id: int, connection: psycopg.Connection[Any] | None = None) -> Status:
        """Cancel a waiting instance at once, or ask a running one to stop; return the status."""
        status = self._store.cancel(instance_id, connection)
        if status is Status.RUNNING and self.wakeup.needs_insert_wakeups:
            self.wakeup.publish_cancel(instance_id)
        if status is not None:
            return status
        row = self._store.status(instance_id)
        if row is None:
            raise NoSuchInstance(f"no instance with id {instance_id}")
        return Status(row[0])

    def retry(self, instance_id: int) -> Status:
        """Run a finished or waiting instance again now, with fresh attempts."""
        try:
            status = self._store.retry(instance_id)
        except psycopg.errors.UniqueViolation:
            # Only the correlation index can fail here: a finished row came back into its
            # scope while a newer live row has the same key.
            raise InstanceConflict(
                f"instance {instance_id} cannot be retried: another live instance has its "
                "correlation key; cancel that one first or insert a new call"
            ) from None
        if status is None:
            row = self._store.status(instance_id)
            if row is None:
                raise NoSuchInstance(f"no instance with id {instance_id}")
            raise InvalidOption(
                f"instance {instance_id} is {row[0]}; a running instance cannot be retried"
            )
        return status

    def inspect(self, instance_id: int) -> dict[str, Any]:
        row = self._store.get(instance_id)
        if row is None:
            raise NoSuchInstance(
                f"no instance with id {instance_id}: it was never committed or GC deleted it"
            )
        return row

    def pause_queue(self, queue: str) -> None:
        self._store.set_paused(queue, True)

    def resume_queue(self, queue: str) -> None:
        self._store.set_paused(queue, False)
        if self.wakeup.needs_insert_wakeups:
            self.wakeup.publish([queue])

    # Testing and processes.

    def drain(
        self,
        queues: Sequence[str] | None = None,
        *,
        with_scheduled: bool = False,
        timeout: float = 30,
    ) -> dict[str, int]:
        """Run everything runnable in ``queues`` (all when None) in this process; return counts.

        Uses the worker's code path: pick, run, apply outcome. Returns counts by outcome:
        ``done``, ``failed``, ``cancelled``, ``retried``, ``next``, ``awaiting``.
        """
        from ._worker.drain import drain

        names = None if queues is None else [self.check_queue(q) for q in queues]
        return drain(self, names, with_scheduled, timeout)

    def worker_queues(self, spec: str | None) -> dict[str, int]:
        """Parse ``default=10,emails=4`` (a bare name takes the queue's configured concurrency).

        With no spec the worker serves every queue the app accepts inserts for (``default``,
        the declared queues and the queues of the jobs it imported), so that no accepted job
        waits for a worker that never comes.
        """
        if not spec:
            return {
                name: self.queues[name].concurrency if name in self.queues else 10
                for name in sorted(self.known_queues())
            }
        queues: dict[str, int] = {}
        for part in spec.split(","):
            part = part.strip()
            if not part:
                continue
            name, _, count = part.partition("=")
            name = name.strip()
            self.check_queue(name)
            if count:
                try:
                    queues[name] = int(count)
                except ValueError:
                    raise InvalidOption(
                        f"invalid concurrency {count!r} for queue {name!r}; write NAME=NUMBER, "
                        "for example default=10"
                    ) from None
                if not 1 <= queues[name] <= MAX_CONCURRENCY:
                    raise InvalidOption(
                        f"concurrency of queue {name!r} must be from 1 to {MAX_CONCURRENCY}, "
                        f"got {count}; run more worker processes for more"
                    )
            else:
                queues[name] = self.queues[name].concurrency if name in self.queues else 10
        if not queues:
            raise InvalidOption(
                f"no queue named in {spec!r}; write for example default=10,emails=4"
            )
        return queues


def _unavailable(url: str, exc: BaseException) -> GendurableError:
    """Build the error for a database that cannot be reached, with what to do about it."""
    from .errors import DatabaseUnavailable

    reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    if "does not exist" in reason and "database" in reason:
        advice = "create the database (for example with createdb) or fix its name in the URL"
    else:
        advice = (
            "check the database URL (App(database_url=...) or GENDURABLE_DATABASE_URL) and "
            "that the server runs"
        )
    return DatabaseUnavailable(f"cannot connect to {_redact(url)}: {reason}; {advice}")


def _redact(url: str) -> str:
    """Return a database URL or conninfo without its password, for messages."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "the configured database URL"
    if "password" in params:
        params["password"] = "***"
    return make_conninfo("", **params)


def json_payload(payload: Any) -> Any:
    """Return ``payload`` as JSON-ready data, or raise InvalidOption naming what is not JSON."""
    import pydantic_core

    from ._json import unstorable

    try:
        jsonable = pydantic_core.to_jsonable_python(payload)
    except pydantic_core.PydanticSerializationError as exc:
        raise InvalidOption(
            f"signal payload {payload!r} is not JSON-serialisable: {exc}; nothing was sent"
        ) from None
    # NaN and the NUL character pass the serialiser but not PostgreSQL's jsonb.
    problem = unstorable(payload, "signal payload") or unstorable(jsonable, "signal payload")
    if problem is not None:
        raise InvalidOption(f"{problem}; nothing was sent")
    return jsonable


def _caller_package() -> tuple[str, ...]:
    """Return the top-level package of the module that created the app."""
    frame = inspect.currentframe()
    try:
        caller = frame.f_back.f_back if frame and frame.f_back else None
        module = caller.f_globals.get("__name__", "") if caller else ""
    finally:
        del frame
    if not module or module == "__main__":
        return ()
    return (module.split(".")[0],)
