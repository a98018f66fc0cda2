"""The ``gendurable`` command. Every option can also come from a ``GENDURABLE_*`` variable."""

from __future__ import annotations

import difflib
import importlib
import json
import logging
import os
import pkgutil
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any, NoReturn

import click

from .app import App
from .errors import GendurableError, NoSuchInstance, closest

# Exit codes, named so that scripts and tests can tell them apart.
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
# A second SIGTERM or SIGINT stops at once, like a process killed by that signal.
EXIT_FORCED = 128 + signal.SIGTERM

logger = logging.getLogger("gendurable")


def load_app(path: str) -> App:
    """Import ``module:attribute`` (attribute defaults to ``app``) and return the App there."""
    module_name, _, attribute = path.partition(":")
    attribute = attribute or "app"
    if not module_name.strip():
        raise click.UsageError(
            f"invalid app path {path!r}: write module:attribute, e.g. proj.app:app"
        )
    if os.getcwd() not in sys.path:
        # Like celery -A: the app module is found from the directory the command runs in.
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name
        # Only a missing app module or package is a usage error. A module that the app module
        # imports and that is missing is a bug in the app, shown with its traceback.
        if missing is None or not (module_name == missing or module_name.startswith(missing + ".")):
            raise
        raise click.UsageError(
            f"app module {module_name!r} not found{_nearest_module(module_name, missing)}; -A "
            "takes module:attribute, importable from the current directory"
        ) from None
    app = getattr(module, attribute, None)
    if app is None and getattr(module, "__file__", None) is None:
        raise click.UsageError(
            f"{module_name!r} is a folder without __init__.py, not the module that defines the "
            "App; run from the folder that holds the app module, or name the module inside it"
        )
    if not isinstance(app, App):
        candidates = [name for name, value in vars(module).items() if isinstance(value, App)]
        hint = closest(attribute, candidates) or (
            f" (the module has an App named {candidates[0]!r})" if candidates else ""
        )
        if not hasattr(module, attribute):
            raise click.UsageError(
                f"module {module_name!r} has no attribute {attribute!r}{hint}; -A takes "
                "module:attribute naming a gendurable App"
            )
        raise click.UsageError(
            f"{module_name}:{attribute} is a {type(app).__name__}, not a gendurable App{hint}"
        )
    return app


def _nearest_module(name: str, missing: str) -> str:
    """Suggest a fix for ``missing``, the first part of module path ``name`` not found.

    Returns " (did you mean 'x'?)", with the rest of ``name`` kept, or an empty string.
    """
    parent, _, leaf = missing.rpartition(".")
    try:
        if parent:
            package = importlib.import_module(parent)
            names = [m.name for m in pkgutil.iter_modules(getattr(package, "__path__", []))]
        else:
            names = [m.name for m in pkgutil.iter_modules([os.getcwd()])]
    except ImportError:
        return ""
    matches = difflib.get_close_matches(leaf, sorted(names), n=1, cutoff=0.6)
    if not matches:
        return ""
    suggestion = (f"{parent}." if parent else "") + matches[0] + name[len(missing) :]
    return f" (did you mean {suggestion!r}?)"


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


app_option = click.option(
    "-A",
    "--app",
    "app_path",
    required=True,
    envvar="GENDURABLE_APP",
    metavar="MODULE:ATTR",
    help="The App to use, as module:attribute (env: GENDURABLE_APP).",
)
log_option = click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    envvar="GENDURABLE_LOG_LEVEL",
    help="Log level of the gendurable logger (env: GENDURABLE_LOG_LEVEL).",
)


class _Group(click.Group):
    """Turns gendurable's errors into one-line messages instead of tracebacks."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except GendurableError as exc:
            raise click.ClickException(str(exc)) from None


@click.group(
    cls=_Group,
    context_settings={"auto_envvar_prefix": "GENDURABLE", "help_option_names": ["-h", "--help"]},
)
@click.version_option(package_name="gendurable")
def main() -> None:
    """Durable jobs and state machines on PostgreSQL."""


@main.command()
@app_option
@log_option
def migrate(app_path: str, log_level: str) -> None:
    """Apply the database migrations (safe to run from several processes at once)."""
    _setup_logging(log_level)
    app = load_app(app_path)
    applied = app.migrate()
    click.echo(f"applied {', '.join(applied)}" if applied else "schema is up to date")


@main.command()
@app_option
@log_option
@click.option(
    "-Q",
    "--queues",
    default=None,
    envvar="GENDURABLE_QUEUES",
    metavar="NAME=N,...",
    help="Queues and their concurrency, e.g. default=10,emails=4; default: every queue "
    "the app knows (default, its declared queues and its jobs' queues), each at "
    "its configured concurrency or 10 (env: GENDURABLE_QUEUES).",
)
@click.option(
    "--burst",
    is_flag=True,
    envvar="GENDURABLE_BURST",
    help="Exit once the queues have nothing runnable (env: GENDURABLE_BURST).",
)
@click.option(
    "--beat",
    "with_beat",
    is_flag=True,
    envvar="GENDURABLE_BEAT",
    help="Also run beat in this process: schedules, due wakeups, reaper and GC "
    "(env: GENDURABLE_BEAT).",
)
@click.option(
    "--grace",
    type=click.FloatRange(min=0, max=86400),
    default=None,
    envvar="GENDURABLE_GRACE",
    metavar="SECONDS",
    help="Seconds a SIGTERM waits for running steps before releasing them; default: "
    "the app's shutdown_grace (env: GENDURABLE_GRACE).",
)
def worker(
    app_path: str,
    log_level: str,
    queues: str | None,
    burst: bool,
    with_beat: bool,
    grace: float | None,
) -> None:
    """Run steps from the given queues until SIGTERM (a second signal stops at once)."""
    _setup_logging(log_level)
    app = load_app(app_path)
    from ._worker.worker import Worker

    try:
        limits = app.worker_queues(queues)
    except GendurableError as exc:
        raise click.UsageError(str(exc)) from None
    app.check_database()
    instance = Worker(app, limits, burst=burst, grace=grace)
    beat = _start_beat(app) if with_beat else None
    stop = threading.Event()
    _install_signals(stop)
    instance.start()
    while not stop.is_set():
        if burst and instance.wait_idle(0.2):
            break
        stop.wait(0.2)
    if stop.is_set():
        instance.stop_picking()
        logger.info(
            "draining: waiting up to %.0f s for running steps; send the signal again to "
            "stop at once",
            instance.grace,
        )
    if beat is not None:
        beat.stop()
    instance.stop()
    app.close()


@main.command()
@app_option
@log_option
def beat(app_path: str, log_level: str) -> None:
    """Fire periodic schedules, wake workers for due rows, reap expired leases and collect
    finished rows, until SIGTERM."""
    _setup_logging(log_level)
    app = load_app(app_path)
    app.check_database()
    instance = _start_beat(app)
    stop = threading.Event()
    _install_signals(stop)
    stop.wait()
    instance.stop()
    logger.info("beat stopped")
    app.close()


def _start_beat(app: App) -> Any:
    """Build and start the beat loops; an invalid schedule is a usage error naming it."""
    from ._beat.beat import Beat

    try:
        instance = Beat(app)
        instance.start()
    except GendurableError as exc:
        app.close()
        raise click.UsageError(str(exc)) from None
    return instance


def _install_signals(stop: threading.Event) -> None:
    def handle(signum: int, frame: Any) -> None:
        if stop.is_set():
            logger.warning(
                "second %s: stopping at once; running steps' leases will expire and "
                "the reaper will run them again",
                signal.Signals(signum).name,
            )
            logging.shutdown()
            os._exit(EXIT_FORCED)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


@main.command()
@app_option
def status(app_path: str) -> None:
    """Show queues: counts by status, the oldest waiting row, and recent throughput."""
    app = load_app(app_path)
    rows = app._store.queue_stats()
    paused = set(app._store.paused_queues())
    schedules = app._store.schedules()
    from ._beat.scheduler import collect

    declared = {schedule.name for schedule in collect(app)}
    if schedules:
        click.echo(f"{'schedule':<40} {'when':<32} {'last tick':<26} {'next tick':<26}")
        for name, spec, _, last_tick, _, next_tick in schedules:
            last = "-" if last_tick is None else last_tick.isoformat(timespec="seconds")
            upcoming = "-" if next_tick is None else next_tick.isoformat(timespec="seconds")
            click.echo(f"{name:<40} {spec:<32} {last:<26} {upcoming:<26}")
        stale = sorted(row[0] for row in schedules if row[0] not in declared)
        if stale:
            click.echo(f"not declared by this app (no longer fired): {', '.join(stale)}")
        click.echo("")
    if not rows and not paused:
        click.echo("no instances")
        return
    by_queue: dict[str, dict[str, Any]] = {}
    for queue, state, count, oldest, finished, _ in rows:
        entry = by_queue.setdefault(queue, {"counts": {}, "oldest": None, "finished": 0})
        entry["counts"][state] = count
        if oldest is not None:
            entry["oldest"] = float(oldest)
        entry["finished"] += finished
    click.echo(
        f"{'queue':<16} {'available':>9} {'scheduled':>9} {'running':>7} {'awaiting':>8} {'done':>7} "
        f"{'failed':>6} {'cancelled':>9} {'oldest wait':>12} {'per min':>8}"
    )
    for queue in sorted(set(by_queue) | paused):
        entry = by_queue.get(queue, {"counts": {}, "oldest": None, "finished": 0})
        counts = entry["counts"]
        oldest = "-" if entry["oldest"] is None else f"{entry['oldest']:.1f} s"
        name = queue + (" (paused)" if queue in paused else "")
        click.echo(
            f"{name:<16} {counts.get('available', 0):>9} {counts.get('scheduled', 0):>9} "
            f"{counts.get('running', 0):>7} "
            f"{counts.get('awaiting', 0):>8} {counts.get('done', 0):>7} {counts.get('failed', 0):>6} "
            f"{counts.get('cancelled', 0):>9} {oldest:>12} {entry['finished']:>8}"
        )


def _fail(exc: GendurableError) -> NoReturn:
    """Print the error and exit: 3 when the instance does not exist, 1 otherwise."""
    click.echo(f"Error: {exc}", err=True)
    sys.exit(EXIT_NOT_FOUND if isinstance(exc, NoSuchInstance) else EXIT_FAILURE)


def _instance_command(name: str, help_text: str) -> Callable[[Callable[..., None]], click.Command]:
    def decorate(function: Callable[..., None]) -> click.Command:
        function = click.argument("instance_id", type=int)(function)
        function = app_option(function)
        return main.command(name=name, help=help_text)(function)

    return decorate


@_instance_command("inspect", "Show one instance as JSON.")
def inspect_command(app_path: str, instance_id: int) -> None:
    app = load_app(app_path)
    try:
        row = app.inspect(instance_id)
    except GendurableError as exc:
        _fail(exc)
    click.echo(json.dumps(row, indent=2, default=str))


@_instance_command("cancel", "Cancel an instance (a running one stops at its next check).")
def cancel_command(app_path: str, instance_id: int) -> None:
    app = load_app(app_path)
    try:
        state = app.cancel(instance_id)
    except GendurableError as exc:
        _fail(exc)
    click.echo(
        f"instance {instance_id}: {state.value}"
        + (" (asked to stop)" if state.value == "running" else "")
    )


@_instance_command("retry", "Run a finished or waiting instance again now, with fresh attempts.")
def retry_command(app_path: str, instance_id: int) -> None:
    app = load_app(app_path)
    try:
        state = app.retry(instance_id)
    except GendurableError as exc:
        _fail(exc)
    click.echo(f"instance {instance_id}: {state.value}")


@main.command("signal")
@app_option
@click.argument("fsm")
@click.argument("key")
@click.argument("name")
@click.argument("payload", required=False)
def signal_command(app_path: str, fsm: str, key: str, name: str, payload: str | None) -> None:
    """Send signal NAME to the live instance of FSM with correlation key KEY.

    PAYLOAD is JSON. FSM is the name of the class as stored (module.QualName). Exits with 3
    when no live instance has that key.
    """
    app = load_app(app_path)
    from . import _registry

    try:
        value = None if payload is None else json.loads(payload)
    except json.JSONDecodeError as exc:
        raise click.UsageError(f"PAYLOAD must be JSON, got {payload!r}: {exc}") from None
    try:
        delivered = app.signal(fsm, key, name, value)
    except GendurableError as exc:
        # Every argument comes from the command line, so a rejected one is a usage error.
        raise click.UsageError(str(exc)) from None
    if delivered:
        click.echo(f"signal {name} delivered to {fsm} {key}")
        return
    known = _registry.registered()
    hint = "" if fsm in known else closest(fsm, list(known))
    click.echo(f"no live instance of {fsm} has key {key!r}{hint}; nothing was sent", err=True)
    sys.exit(EXIT_NOT_FOUND)


@main.group()
def queue() -> None:
    """Pause or resume a queue for every worker."""


@queue.command("pause")
@app_option
@click.argument("name")
def queue_pause(app_path: str, name: str) -> None:
    """Stop every worker from picking rows of queue NAME (running steps finish)."""
    app = load_app(app_path)
    try:
        app.check_queue(name)
    except GendurableError as exc:
        raise click.UsageError(str(exc)) from None
    app.pause_queue(name)
    click.echo(f"queue {name} paused")


@queue.command("resume")
@app_option
@click.argument("name")
def queue_resume(app_path: str, name: str) -> None:
    """Let workers pick rows of queue NAME again."""
    app = load_app(app_path)
    try:
        app.check_queue(name)
    except GendurableError as exc:
        raise click.UsageError(str(exc)) from None
    app.resume_queue(name)
    click.echo(f"queue {name} resumed")
