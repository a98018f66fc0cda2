"""Helpers for acceptance tests: real ``gendurable`` processes and polling the database.

Tests synchronise by polling the database (or a process's log) until a condition holds,
with a deadline, and never by sleeping a fixed time.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import psycopg

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[2]
GENDURABLE = Path(sys.executable).with_name("gendurable")
APP = "tests.acceptance.jobs_app:app"
# Connections the tests open themselves; tests that terminate the engine's connections
# match "gendurable%" and so leave these alone.
APPLICATION_NAME = "acceptance test"


def wait_until(predicate: Callable[[], T], what: str, timeout: float = 20.0) -> T:
    """Poll ``predicate`` until it returns a true value and return that value.

    Raises AssertionError naming ``what`` when ``timeout`` seconds pass first.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting until {what}")
        time.sleep(0.05)


class Process:
    """One ``gendurable`` command running in the background, its output in a log file."""

    def __init__(self, name: str, args: Sequence[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.popen = subprocess.Popen(
            [str(GENDURABLE), *args], cwd=ROOT, env=env,
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
        )

    def __repr__(self) -> str:
        return f"<Process {self.name} pid={self.pid}>"

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_log(self, text: str, timeout: float = 20.0) -> None:
        wait_until(lambda: text in self.log(), f"{self.name} logs {text!r}", timeout)

    def send(self, signum: signal.Signals) -> None:
        self.popen.send_signal(signum)

    def wait_exit(self, timeout: float = 20.0) -> int:
        """Wait for the process to end; return its exit code (-N when killed by signal N)."""
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} still runs {timeout} s later") from None

    def kill(self) -> None:
        """SIGKILL the process if it still runs and reap it."""
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(10)
        self._log.close()


class Cluster:
    """Starts ``gendurable`` processes on one test database and kills them all at the end."""

    def __init__(self, database_url: str, log_dir: Path) -> None:
        self.database_url = database_url
        self.log_dir = log_dir
        self.processes: list[Process] = []

    def env(self, **settings: object) -> dict[str, str]:
        """Return the environment of a command: the database URL and GENDURABLE_* settings."""
        env = {key: value for key, value in os.environ.items() if not key.startswith("GENDURABLE_")}
        env["GENDURABLE_DATABASE_URL"] = self.database_url
        for name, value in settings.items():
            env[f"GENDURABLE_{name.upper()}"] = str(value)
        return env

    def start(self, name: str, *args: str, **settings: object) -> Process:
        process = Process(
            f"{len(self.processes) + 1}-{name}", [*args], self.env(**settings), self.log_dir
        )
        self.processes.append(process)
        return process

    def worker(self, *args: str, **settings: object) -> Process:
        """Start ``gendurable worker -A APP [args]`` with the given settings."""
        return self.start("worker", "worker", "-A", APP, *args, **settings)

    def beat(self, **settings: object) -> Process:
        return self.start("beat", "beat", "-A", APP, **settings)

    def run(self, *args: str, timeout: float = 60.0, **settings: object) -> subprocess.CompletedProcess[str]:
        """Run one ``gendurable`` command to its end and return its result."""
        return subprocess.run(
            [str(GENDURABLE), *args], cwd=ROOT, env=self.env(**settings), stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=timeout, check=False,
        )

    def close(self) -> None:
        """Kill every process still running and print each one's log for a failed test's report."""
        for process in self.processes:
            process.kill()
        for process in self.processes:
            print(f"----- {process.name} (pid {process.pid}, exit {process.popen.returncode}) -----")
            print(process.log())


class Database:
    """A connection of the test to its database, with the queries tests check facts with."""

    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(url, autocommit=True, application_name=APPLICATION_NAME)

    def close(self) -> None:
        self.conn.close()

    def rows(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.conn.execute(statement, params).fetchall()  # type: ignore[arg-type]

    def value(self, statement: str, params: Sequence[Any] = ()) -> Any:
        row = self.conn.execute(statement, params).fetchone()  # type: ignore[arg-type]
        return None if row is None else row[0]

    def status(self, job_id: int) -> str:
        return str(self.value("SELECT status FROM gen_durable WHERE id = %s", (job_id,)))

    def statuses(self, job_ids: Iterable[int]) -> dict[int, str]:
        return dict(self.rows(
            "SELECT id, status::text FROM gen_durable WHERE id = ANY(%s)", (list(job_ids),)
        ))

    def count_status(self, job_ids: Iterable[int], status: str) -> int:
        return int(self.value(
            "SELECT count(*) FROM gen_durable WHERE id = ANY(%s) AND status = %s",
            (list(job_ids), status),
        ))

    def executions(self, job_id: int) -> list[tuple[int, int, datetime | None, str | None]]:
        """Return (attempt, pid, ended_at, note) of each execution of one job, in start order."""
        return self.rows(  # type: ignore[return-value]
            "SELECT attempt, pid, ended_at, note FROM executions WHERE job_id = %s ORDER BY id",
            (job_id,),
        )

    def count_executions(self, job_id: int) -> int:
        return int(self.value("SELECT count(*) FROM executions WHERE job_id = %s", (job_id,)))

    def release(self, tag: str) -> None:
        """Let the ``block`` job waiting for ``tag`` finish its step."""
        self.conn.execute("INSERT INTO releases (tag) VALUES (%s)", (tag,))

    def listeners(self) -> list[int]:
        """Return the backend pids of worker listeners that have issued their LISTENs."""
        return [row[0] for row in self.rows(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name = 'gendurable listener' AND query = 'LISTEN gen_durable_cancel'"
        )]

    def wait_listening(self, count: int, timeout: float = 20.0) -> list[int]:
        """Wait until ``count`` workers listen for wakeups; return their listeners' pids."""
        def ready() -> list[int] | None:
            pids = self.listeners()
            return pids if len(pids) == count else None

        return wait_until(ready, f"{count} worker listener(s) are listening", timeout)

    def terminate(self, application_name: str = "gendurable%") -> int:
        """Terminate the backends of this database whose application_name matches; return how many."""
        rows = self.rows(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name LIKE %s "
            "AND pid <> pg_backend_pid()",
            (application_name,),
        )
        return sum(1 for (terminated,) in rows if terminated)


def max_overlap(intervals: Iterable[tuple[datetime, datetime]]) -> int:
    """Return the largest number of intervals open at one instant (touching ends do not overlap)."""
    events: list[tuple[datetime, int]] = []
    for started, ended in intervals:
        events.append((started, 1))
        events.append((ended, -1))
    # At equal times an end sorts before a start, so back-to-back intervals count once.
    events.sort()
    running = highest = 0
    for _, change in events:
        running += change
        highest = max(highest, running)
    return highest
