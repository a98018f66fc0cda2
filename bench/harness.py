"""Run one benchmark scenario for one system and print its result as JSON.

bench/run.py starts this module once per scenario, under the interpreter of the
system's virtualenv, so gendurable (Python 3.11) and the peers (Python 3.12)
are measured by the same code. It depends only on the standard library and
psycopg 3, which both virtualenvs have.

Usage: python -m bench.harness SYSTEM SCENARIO --dsn URL [--jobs N] ...
The last line on stdout is the JSON result; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import math
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psycopg

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
LOG_DIR = BENCH_DIR / "results" / "logs"

SCENARIOS = ("install", "insert_one", "insert_bulk", "processing", "latency")

# Jobs inserted (and committed) before the timed insert loop starts, so that
# connection setup, prepared statements and import-time work are not timed.
INSERT_WARMUP_JOBS = 100

# How long a worker may take to pick up the first latency probe after start.
WORKER_READY_TIMEOUT_S = 60.0

# Gap before each latency probe insert, drawn uniformly from this range, in
# seconds. The gaps are random so that probes do not line up with a poll timer.
LATENCY_GAP_S = (0.005, 0.030)

STOP_GRACE_S = 10.0


def log(message: str) -> None:
    print(f"[harness] {message}", file=sys.stderr, flush=True)


def load_system(name: str) -> Any:
    return importlib.import_module(f"bench.systems.{name}")


def worker_environment(system: Any, dsn: str, udp_port: int | None = None) -> dict[str, str]:
    """Build the environment for worker processes.

    Workers read their database URL from BENCH_DSN or from the variables that
    the system's worker_env() returns, so no worker falls back to a default
    server.
    """
    env = dict(os.environ)
    env["BENCH_DSN"] = dsn
    if hasattr(system, "worker_env"):
        env.update(system.worker_env(dsn))
    env["PYTHONPATH"] = str(REPO_DIR)
    env["PYTHONUNBUFFERED"] = "1"
    if udp_port is not None:
        env["BENCH_UDP_PORT"] = str(udp_port)
    return env


class Workers:
    """Worker processes started in their own process groups and stopped on exit.

    Each worker gets a new session, so a worker that forks children (Celery's
    prefork pool) can be stopped as a whole by signalling its process group.
    """

    def __init__(self, argv: list[str], count: int, env: dict[str, str], log_name: str):
        self.argv = argv
        self.count = count
        self.env = env
        self.log_name = log_name
        self.processes: list[subprocess.Popen[bytes]] = []
        self.log_files: list[Any] = []

    def __enter__(self) -> Workers:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        for index in range(self.count):
            log_file = open(LOG_DIR / f"{self.log_name}-{index}.log", "wb")
            self.log_files.append(log_file)
            self.processes.append(
                subprocess.Popen(
                    self.argv,
                    cwd=REPO_DIR,
                    env=self.env,
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        return self

    def exited(self) -> list[int]:
        return [p.returncode for p in self.processes if p.poll() is not None]

    def __exit__(self, *exc_info: object) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for process in self.processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log(f"worker pid {process.pid} ignored SIGTERM for {STOP_GRACE_S} s; sending SIGKILL")
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        for process in self.processes:
            # Children of a worker (a prefork pool) can outlive their parent.
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for log_file in self.log_files:
            log_file.close()


async def prepare_database(dsn: str) -> None:
    """Give every system the same starting point before a timed phase.

    Autovacuum may be off, as it is on the development machine's server, and
    then the planner would see whatever statistics an earlier phase left
    behind. CHECKPOINT keeps a checkpoint caused by earlier phases out of the
    timed window.
    """
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute("VACUUM ANALYZE")
        await conn.execute("CHECKPOINT")


async def run_install(system: Any, client: Any, args: argparse.Namespace) -> dict[str, Any]:
    await client.install()
    return {}


async def run_insert_one(system: Any, client: Any, args: argparse.Namespace) -> dict[str, Any]:
    await client.clear()
    await prepare_database(args.dsn)
    for i in range(INSERT_WARMUP_JOBS):
        await client.insert_one(-1 - i)

    start = time.perf_counter()
    for i in range(args.jobs):
        await client.insert_one(i)
    elapsed = time.perf_counter() - start

    await client.clear()
    return {"jobs": args.jobs, "seconds": elapsed, "jobs_per_s": args.jobs / elapsed}


async def run_insert_bulk(system: Any, client: Any, args: argparse.Namespace) -> dict[str, Any]:
    await client.clear()
    await prepare_database(args.dsn)
    await client.insert_bulk(list(range(-INSERT_WARMUP_JOBS, 0)))

    start = time.perf_counter()
    await client.insert_bulk(list(range(args.jobs)))
    elapsed = time.perf_counter() - start

    await client.clear()
    return {"jobs": args.jobs, "seconds": elapsed, "jobs_per_s": args.jobs / elapsed}


async def run_processing(system: Any, client: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Time workers draining args.jobs queued no-op jobs.

    The clock starts just before the worker processes are spawned and stops
    when the database (Redis for Celery) shows no unfinished job. The poll
    interval shrinks near the end so that it adds little to the measured time
    without loading the server during the run.
    """
    await client.clear()
    await client.insert_bulk(list(range(args.jobs)))
    await prepare_database(args.dsn)
    unfinished = await client.count_unfinished()
    if unfinished != args.jobs:
        raise RuntimeError(f"expected {args.jobs} queued jobs before the run, found {unfinished}")

    argv = system.worker_command(args.concurrency, burst=True)
    env = worker_environment(system, args.dsn)
    log_name = f"{system.NAME}-processing-{args.workers}w"
    first_finished_s = None
    deadline = time.monotonic() + args.timeout

    start = time.perf_counter()
    with Workers(argv, args.workers, env, log_name) as workers:
        while True:
            remaining = await client.count_unfinished()
            now = time.perf_counter()
            if first_finished_s is None and remaining < args.jobs:
                first_finished_s = now - start
            if remaining == 0:
                elapsed = now - start
                break
            if len(workers.exited()) == args.workers:
                # A burst worker may have finished the last jobs after the count above.
                remaining = await client.count_unfinished()
                if remaining == 0:
                    elapsed = time.perf_counter() - start
                    break
                raise RuntimeError(
                    f"all workers exited with {remaining} of {args.jobs} jobs unfinished; "
                    f"see {LOG_DIR}/{log_name}-*.log"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{remaining} of {args.jobs} jobs still unfinished after {args.timeout} s; "
                    f"see {LOG_DIR}/{log_name}-*.log"
                )
            if first_finished_s is None:
                await asyncio.sleep(0.02)
            elif remaining > 1000:
                await asyncio.sleep(0.1)
            else:
                await asyncio.sleep(0.01)
        early_exits = workers.exited()

    await client.clear()
    result = {
        "jobs": args.jobs,
        "workers": args.workers,
        "concurrency": args.concurrency,
        "seconds": elapsed,
        "jobs_per_s": args.jobs / elapsed,
        "first_finished_s": first_finished_s,
    }
    if first_finished_s is not None and elapsed > first_finished_s:
        result["jobs_per_s_after_first"] = args.jobs / (elapsed - first_finished_s)
    if early_exits:
        result["workers_exited_before_stop"] = early_exits
    return result


class ProbeReceiver:
    """UDP socket on 127.0.0.1 that collects (probe id, start time) datagrams."""

    def __init__(self) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.settimeout(0.2)
        self.port = self.socket.getsockname()[1]
        self.started: dict[int, float] = {}
        self.condition = threading.Condition()
        self.stopping = False
        self.thread = threading.Thread(target=self._receive, daemon=True)
        self.thread.start()

    def _receive(self) -> None:
        while not self.stopping:
            try:
                data = self.socket.recv(256)
            except TimeoutError:
                continue
            probe_id, started_at = data.decode().split()
            with self.condition:
                self.started.setdefault(int(probe_id), float(started_at))
                self.condition.notify_all()

    def wait_for(self, probe_ids: set[int], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.condition:
            while not probe_ids <= self.started.keys():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.condition.wait(remaining)
            return True

    def close(self) -> None:
        self.stopping = True
        self.thread.join()
        self.socket.close()


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Return the nearest-rank percentile of an already sorted list."""
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


async def run_latency(system: Any, client: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Measure the delay from insert commit to job start with an idle worker.

    Each probe job sends time.time() at its start to a UDP socket here, and the
    delay is that time minus time.time() taken right after the insert returned.
    """
    await client.clear()
    await prepare_database(args.dsn)
    receiver = ProbeReceiver()
    argv = system.worker_command(args.concurrency, burst=False)
    env = worker_environment(system, args.dsn, receiver.port)
    rng = random.Random(args.seed)
    inserted_at: dict[int, float] = {}
    try:
        with Workers(argv, 1, env, f"{system.NAME}-latency") as workers:
            # A warm-up probe proves the worker is up and listening.
            await client.insert_probe(-1)
            if not receiver.wait_for({-1}, WORKER_READY_TIMEOUT_S):
                raise TimeoutError(
                    f"worker did not run a probe job within {WORKER_READY_TIMEOUT_S} s "
                    f"(exited: {workers.exited()}); see {LOG_DIR}/{system.NAME}-latency-0.log"
                )
            await asyncio.sleep(1.0)

            for probe_id in range(args.jobs):
                await asyncio.sleep(rng.uniform(*LATENCY_GAP_S))
                await client.insert_probe(probe_id)
                inserted_at[probe_id] = time.time()

            all_started = receiver.wait_for(set(inserted_at), 30.0)
    finally:
        receiver.close()

    delays_ms = sorted(
        (receiver.started[probe_id] - inserted_at[probe_id]) * 1000.0
        for probe_id in inserted_at
        if probe_id in receiver.started
    )
    await client.clear()
    result = {
        "jobs": args.jobs,
        "received": len(delays_ms),
        "p50_ms": percentile(delays_ms, 0.50),
        "p95_ms": percentile(delays_ms, 0.95),
        "p99_ms": percentile(delays_ms, 0.99),
        "max_ms": delays_ms[-1],
        "mean_ms": statistics.fmean(delays_ms),
    }
    if not all_started:
        result["missing_probes"] = args.jobs - len(delays_ms)
    return result


RUNNERS = {
    "install": run_install,
    "insert_one": run_insert_one,
    "insert_bulk": run_insert_bulk,
    "processing": run_processing,
    "latency": run_latency,
}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("system", help="module name under bench/systems, e.g. pgqueuer")
    parser.add_argument("scenario", choices=SCENARIOS)
    parser.add_argument("--dsn", required=True, help="PostgreSQL URL of this system's database")
    parser.add_argument("--jobs", type=int, default=10_000, help="number of jobs (default: 10000)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default: 1)")
    parser.add_argument(
        "--concurrency", type=int, default=10, help="jobs in flight per worker (default: 10)"
    )
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="processing time limit in seconds (default: 300)"
    )
    parser.add_argument("--seed", type=int, default=1, help="seed for the latency gaps (default: 1)")
    return parser.parse_args(argv)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    # System modules that build their app at import time read the URL here.
    os.environ["BENCH_DSN"] = args.dsn
    system = load_system(args.system)
    async with system.Client(args.dsn) as client:
        return await RUNNERS[args.scenario](system, client, args)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    result = asyncio.run(main_async(args))
    result["python"] = sys.version.split()[0]
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
