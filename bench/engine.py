"""gendurable-only figures: state-machine steps beside job steps, and wake latency through
each wakeup channel (PostgreSQL LISTEN/NOTIFY, Redis and RabbitMQ through kombu).

Run from the repository root with gendurable's virtualenv:

    .venv/bin/python bench/engine.py [--jobs 5000] [--probes 200]

It uses the PostgreSQL server at 127.0.0.1:5432 (database gendurable_bench_engine, created
anew), Redis at 127.0.0.1:6379 (database 7) and RabbitMQ at 127.0.0.1:5672, and writes
bench/results/engine.md.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.harness import LATENCY_GAP_S, ProbeReceiver, Workers  # noqa: E402

SERVER = "postgresql://postgres@127.0.0.1:5432"
DATABASE = "gendurable_bench_engine"
DSN = f"{SERVER}/{DATABASE}"
CHANNELS = {
    "PostgreSQL LISTEN/NOTIFY": "postgres",
    "Redis (kombu)": "redis://127.0.0.1:6379/7",
    "RabbitMQ (kombu)": "amqp://guest:guest@127.0.0.1:5672//",
}


def recreate_database() -> None:
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DATABASE}"')


def environment(wakeup: str = "postgres", udp_port: int | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        GENDURABLE_DATABASE_URL=DSN, BENCH_DSN=DSN, GENDURABLE_WAKEUP=wakeup,
        PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1",
    )
    if udp_port is not None:
        env["BENCH_UDP_PORT"] = str(udp_port)
    return env


def worker_argv(burst: bool) -> list[str]:
    argv = [str(Path(sys.executable).parent / "gendurable"), "worker",
            "-A", "bench.engine_app:app", "--queues", "default=10", "--log-level", "warning"]
    return argv + (["--burst"] if burst else [])


def unfinished(conn: psycopg.Connection) -> int:
    row = conn.execute(
        "SELECT count(*) FROM gen_durable WHERE status IN ('available', 'running', 'awaiting')"
    ).fetchone()
    return int(row[0]) if row else 0


def steps_per_second(kind: str, count: int) -> float:
    """Queue ``count`` jobs or three-step instances, run one worker, return steps per second."""
    from bench.engine_app import ThreeSteps, app, noop

    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute("TRUNCATE gen_durable, gen_durable_signals")
        if kind == "job":
            app.insert_all([noop.new(i) for i in range(count)])
        else:
            app.insert_all([ThreeSteps.new(ThreeSteps.State(i=i)) for i in range(count)])
        conn.execute("VACUUM ANALYZE gen_durable")
        start = time.perf_counter()
        with Workers(worker_argv(burst=True), 1, environment(), f"engine-{kind}"):
            while unfinished(conn):
                time.sleep(0.02)
        elapsed = time.perf_counter() - start
    steps = count * (1 if kind == "job" else 3)
    return steps / elapsed


def wake_latency(wakeup: str, probes: int, seed: int) -> tuple[float, float, float]:
    """Return p50, p95 and p99 in ms from insert to start, with an idle worker on ``wakeup``."""
    from gendurable import App

    receiver = ProbeReceiver()
    rng = random.Random(seed)
    inserted_at: dict[int, float] = {}
    # A long poll, so that a probe starts early only if the wakeup reached the worker.
    env = environment(wakeup, receiver.port) | {"GENDURABLE_POLL_INTERVAL": "30"}
    app = App(DSN, wakeup=wakeup, include=("bench",))
    from bench.engine_app import probe

    app.set_current()
    try:
        with Workers(worker_argv(burst=False), 1, env, f"engine-latency-{wakeup.split(':')[0]}"):
            time.sleep(1.0)
            probe.delay(-1)
            if not receiver.wait_for({-1}, 60):
                raise TimeoutError(f"the worker on {wakeup} did not start the warm-up probe")
            for probe_id in range(probes):
                time.sleep(rng.uniform(*LATENCY_GAP_S))
                probe.delay(probe_id)
                inserted_at[probe_id] = time.time()
            receiver.wait_for(set(inserted_at), 60)
    finally:
        receiver.close()
        app.close()
    delays = sorted(
        (receiver.started[i] - inserted_at[i]) * 1000 for i in inserted_at if i in receiver.started
    )
    if len(delays) < probes:
        raise RuntimeError(f"only {len(delays)} of {probes} probes started on {wakeup}")

    def quantile(q: float) -> float:
        return delays[min(int(q * len(delays)), len(delays) - 1)]

    return quantile(0.5), quantile(0.95), quantile(0.99)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--probes", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    recreate_database()
    env = environment()
    subprocess.run(
        [str(Path(sys.executable).parent / "gendurable"), "migrate", "-A", "bench.engine_app:app"],
        env=env, check=True, cwd=REPO, capture_output=True,
    )
    os.environ.update(GENDURABLE_DATABASE_URL=DSN, BENCH_DSN=DSN)

    lines = [
        "# gendurable engine figures",
        "",
        f"Command: `.venv/bin/python bench/engine.py --jobs {args.jobs} --probes {args.probes}`, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, on PostgreSQL at 127.0.0.1:5432, "
        "one worker with concurrency 10.",
        "",
        "| Scenario | Unit | Value |",
        "|---|---|---|",
    ]
    job_rate = steps_per_second("job", args.jobs)
    fsm_rate = steps_per_second("fsm", args.jobs)
    lines.append(f"| No-op job, one step each ({args.jobs:,} jobs) | steps/s | {job_rate:,.0f} |")
    lines.append(
        f"| Three-step state machine, Next, Next, Done ({args.jobs:,} instances) | steps/s | "
        f"{fsm_rate:,.0f} ({fsm_rate / job_rate:.2f}x the job's) |"
    )
    for label, wakeup in CHANNELS.items():
        p50, p95, p99 = wake_latency(wakeup, args.probes, args.seed)
        lines.append(
            f"| Insert-to-start delay through {label}, p50 / p95 / p99 | ms | "
            f"{p50:.2f} / {p95:.2f} / {p99:.2f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    (REPO / "bench" / "results" / "engine.md").write_text(text)


if __name__ == "__main__":
    main()
