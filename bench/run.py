"""Benchmark gendurable against PostgreSQL job queues and Celery, side by side.

Run from the repository root with gendurable's interpreter:

    /work/main/.venv/bin/python bench/run.py
    /work/main/.venv/bin/python bench/run.py --systems gendurable,pgqueuer --scenarios processing

Each system gets a fresh database on the local PostgreSQL server. Scenarios
run one at a time in a subprocess of bench/harness.py under the system's own
interpreter (the peers use bench/.venv-peers from bench/setup_peers.sh). The
table goes to stdout and, with the machine description and the command, to
bench/results/latest.md (raw numbers to latest.json).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
sys.path.insert(0, str(REPO_DIR))

from bench import ceiling  # noqa: E402

PEERS_PYTHON = BENCH_DIR / ".venv-peers" / "bin" / "python"
GENDURABLE_CLI = Path(sys.executable).parent / "gendurable"

# Every connection stays on this machine.
PG_HOST = "127.0.0.1"
PG_PORT = "5432"
PG_USER = "postgres"
ADMIN_DSN = f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/postgres"

# Upper bound for one scenario subprocess, in seconds. A processing run that
# reaches its own --timeout fails earlier with a clearer message.
SCENARIO_TIMEOUT_S = 300
PROCESSING_TIMEOUT_S = 240

PGBENCH_SECONDS = 10

# A 1-minute load average above this at start means other work shares the
# CPUs, which skews every figure on a small machine.
BUSY_LOAD_AVERAGE = 0.5


@dataclass(frozen=True)
class System:
    name: str
    label: str
    uses_peers_venv: bool


SYSTEMS = [
    System("gendurable", "gendurable", False),
    System("procrastinate", "Procrastinate", True),
    System("pgqueuer", "PgQueuer", True),
    System("oban", "oban (Python)", True),
    System("celery", "Celery + Redis", True),
]
SYSTEMS_BY_NAME = {system.name: system for system in SYSTEMS}

SYSTEM_SCENARIOS = ["insert_one", "insert_bulk", "processing_1w", "processing_2w", "latency"]
CEILING_SCENARIOS = ["copy", "pgbench"]
SCENARIO_GROUPS = {
    "insert": ["insert_one", "insert_bulk"],
    "processing": ["processing_1w", "processing_2w"],
    "ceiling": CEILING_SCENARIOS,
    "all": SYSTEM_SCENARIOS + CEILING_SCENARIOS,
}


def log(message: str) -> None:
    print(f"[run] {message}", file=sys.stderr, flush=True)


def parse_list(value: str, known: list[str], groups: dict[str, list[str]], kind: str) -> list[str]:
    selected: list[str] = []
    for item in (part.strip() for part in value.split(",") if part.strip()):
        expanded = groups.get(item, [item])
        for name in expanded:
            if name not in known:
                choices = ", ".join(known + list(groups))
                raise SystemExit(f"unknown {kind} {name!r}; choose from: {choices}")
            if name not in selected:
                selected.append(name)
    # Keep the canonical order whatever order the user typed.
    return [name for name in known if name in selected]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Benchmark gendurable against peer job systems.")
    parser.add_argument(
        "--systems",
        default="all",
        help="comma-separated systems: " + ", ".join(SYSTEMS_BY_NAME) + ", or all (default)",
    )
    parser.add_argument(
        "--scenarios",
        default="all",
        help="comma-separated scenarios: "
        + ", ".join(SYSTEM_SCENARIOS + CEILING_SCENARIOS)
        + ", or the groups insert, processing, ceiling, all (default)",
    )
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs per insert and processing scenario (default: 10000)")
    parser.add_argument("--latency-jobs", type=int, default=300, help="probe jobs in the latency scenario (default: 300)")
    parser.add_argument("--concurrency", type=int, default=10, help="jobs in flight per worker (default: 10)")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="runs of each scenario; the report keeps the run with the median main value (default: 1)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=BENCH_DIR / "results" / "latest.md",
        help="Markdown report path; the JSON goes next to it (default: bench/results/latest.md)",
    )
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error(f"--repeat must be at least 1, got {args.repeat}")
    system_groups = {"all": list(SYSTEMS_BY_NAME)}
    args.systems = parse_list(args.systems, list(SYSTEMS_BY_NAME), system_groups, "system")
    args.scenarios = parse_list(
        args.scenarios, SYSTEM_SCENARIOS + CEILING_SCENARIOS, SCENARIO_GROUPS, "scenario"
    )
    return args


def database_url(database: str) -> str:
    return f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{database}"


def recreate_database(database: str) -> str:
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{database}"')
    return database_url(database)


def interpreter_for(system: System) -> str:
    return str(PEERS_PYTHON) if system.uses_peers_venv else sys.executable


def check_ready(system: System) -> str | None:
    """Return why `system` cannot run yet, or None when it can."""
    if system.uses_peers_venv:
        if not PEERS_PYTHON.exists():
            return f"{PEERS_PYTHON} not found; run bench/setup_peers.sh first"
        return None
    probe = subprocess.run(
        [sys.executable, "-c", "import gendurable"], capture_output=True, text=True, check=False
    )
    if probe.returncode != 0:
        last_line = (probe.stderr.strip().splitlines() or ["no output"])[-1]
        return f"`import gendurable` failed under {sys.executable}: {last_line}"
    if not GENDURABLE_CLI.exists():
        return f"{GENDURABLE_CLI} not found; install the package into this venv (pip install -e .)"
    return None


def run_harness(system: System, scenario: str, dsn: str, extra: list[str]) -> dict[str, Any]:
    argv = [interpreter_for(system), "-m", "bench.harness", system.name, scenario, "--dsn", dsn, *extra]
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_DIR)
    log(f"{system.name}: {scenario} {' '.join(extra)}")
    try:
        completed = subprocess.run(
            argv,
            cwd=REPO_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=SCENARIO_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {SCENARIO_TIMEOUT_S} s"}
    if completed.returncode != 0:
        last_lines = completed.stderr.strip().splitlines()[-3:]
        return {"error": " / ".join(last_lines) or f"exit code {completed.returncode}"}
    return json.loads(completed.stdout.strip().splitlines()[-1])


def median_run(runs: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """Return the run with the median `key` (the lower one of an even count), listing all values."""
    succeeded = sorted((run for run in runs if "error" not in run), key=lambda run: run[key])
    if not succeeded:
        return runs[0]
    chosen = dict(succeeded[(len(succeeded) - 1) // 2])
    if len(runs) > 1:
        chosen["all_runs"] = [run.get(key, run.get("error")) for run in runs]
    return chosen


def run_system(system: System, args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    scenarios = [s for s in args.scenarios if s in SYSTEM_SCENARIOS]
    if not scenarios:
        return results
    problem = check_ready(system)
    if problem:
        log(f"{system.name}: skipped: {problem}")
        return {scenario: {"error": f"skipped: {problem}"} for scenario in scenarios}

    dsn = recreate_database(f"bench_{system.name}")
    installed = run_harness(system, "install", dsn, [])
    if "error" in installed:
        log(f"{system.name}: install failed: {installed['error']}")
        return {scenario: {"error": f"install failed: {installed['error']}"} for scenario in scenarios}

    jobs = ["--jobs", str(args.jobs)]
    concurrency = ["--concurrency", str(args.concurrency)]
    for scenario in scenarios:
        key = "jobs_per_s"
        if scenario in ("insert_one", "insert_bulk"):
            harness_scenario, extra = scenario, jobs
        elif scenario in ("processing_1w", "processing_2w"):
            workers = "1" if scenario == "processing_1w" else "2"
            harness_scenario = "processing"
            extra = [*jobs, *concurrency, "--workers", workers, "--timeout", str(PROCESSING_TIMEOUT_S)]
        else:
            harness_scenario, key = "latency", "p50_ms"
            extra = ["--jobs", str(args.latency_jobs), *concurrency]
        runs = [run_harness(system, harness_scenario, dsn, extra) for _ in range(args.repeat)]
        result = median_run(runs, key)
        if "error" in result:
            log(f"{system.name}: {scenario} failed: {result['error']}")
        results[scenario] = result
    return results


def run_ceiling(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    if not any(s in CEILING_SCENARIOS for s in args.scenarios):
        return results
    dsn = recreate_database("bench_ceiling")
    if "copy" in args.scenarios:
        log("ceiling: COPY")
        runs = [ceiling.measure_copy(dsn, args.jobs) for _ in range(args.repeat)]
        results["copy"] = median_run(runs, "jobs_per_s")
    if "pgbench" in args.scenarios:
        ceiling.prepare_pgbench_table(dsn)
        conninfo = {"host": PG_HOST, "port": PG_PORT, "user": PG_USER, "dbname": "bench_ceiling"}
        for clients in (1, 8):
            log(f"ceiling: pgbench, {clients} client(s), {PGBENCH_SECONDS} s")
            runs = [
                ceiling.measure_pgbench(conninfo, clients, PGBENCH_SECONDS)
                for _ in range(args.repeat)
            ]
            results[f"pgbench_{clients}"] = median_run(runs, "tx_per_s")
    return results


def describe_machine() -> dict[str, str]:
    cpu = "unknown"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as meminfo:
        mem_kib = int(meminfo.readline().split()[1])
    with psycopg.connect(ADMIN_DSN) as conn:
        row = conn.execute("SELECT version()").fetchone()
        settings = dict(
            conn.execute(
                "SELECT name, setting FROM pg_settings WHERE name IN "
                "('shared_buffers', 'synchronous_commit', 'fsync', 'autovacuum', 'max_connections')"
            ).fetchall()
        )
    postgres = row[0].split(",")[0] if row else "unknown"
    return {
        "cpu": f"{os.cpu_count()} cores ({cpu})",
        "memory": f"{mem_kib / 1024 / 1024:.1f} GiB",
        "os": f"{platform.system()} {platform.release()}",
        "postgres": postgres,
        "postgres_settings": ", ".join(f"{k}={v}" for k, v in sorted(settings.items())),
        "gendurable_python": platform.python_version(),
    }


def package_versions() -> dict[str, str]:
    versions: dict[str, str] = {}
    probe = subprocess.run(
        [sys.executable, "-c", "import importlib.metadata as m; print(m.version('gendurable'))"],
        capture_output=True,
        text=True,
        check=False,
    )
    versions["gendurable"] = probe.stdout.strip() or "not installed"
    if PEERS_PYTHON.exists():
        freeze = subprocess.run(
            [str(PEERS_PYTHON), "-m", "pip", "list", "--format=json", "--disable-pip-version-check"],
            capture_output=True,
            text=True,
            check=False,
        )
        reported = {"procrastinate", "pgqueuer", "oban", "celery", "kombu", "redis", "psycopg", "asyncpg"}
        for package in json.loads(freeze.stdout or "[]"):
            if package["name"].lower() in reported:
                versions[package["name"].lower()] = package["version"]
        peer_python = subprocess.run(
            [str(PEERS_PYTHON), "-c", "import platform; print(platform.python_version())"],
            capture_output=True,
            text=True,
            check=False,
        )
        versions["peers_python"] = peer_python.stdout.strip()
    return versions


# ---------------------------------------------------------------- report


@dataclass(frozen=True)
class Row:
    scenario: str
    label: str
    key: str
    unit: str


def table_rows(args: argparse.Namespace) -> list[Row]:
    jobs = f"{args.jobs:,}"
    probes = f"{args.latency_jobs:,}"
    return [
        Row("insert_one", f"Insert {jobs} jobs one by one", "jobs_per_s", "jobs/s"),
        Row("insert_bulk", f"Insert {jobs} jobs in bulk", "jobs_per_s", "jobs/s"),
        Row("processing_1w", f"Process {jobs} no-op jobs, 1 worker x {args.concurrency}", "jobs_per_s", "jobs/s"),
        Row("processing_2w", f"Process {jobs} no-op jobs, 2 workers x {args.concurrency}", "jobs_per_s", "jobs/s"),
        Row("latency", f"Insert-to-start delay, idle worker, p50 ({probes} jobs)", "p50_ms", "ms"),
        Row("latency", "Insert-to-start delay, p95", "p95_ms", "ms"),
        Row("latency", "Insert-to-start delay, p99", "p99_ms", "ms"),
    ]


def format_value(value: float, unit: str) -> str:
    if unit == "ms":
        return f"{value:.2f}" if value < 10 else f"{value:.1f}"
    return f"{value:,.0f}"


def format_cell(result: dict[str, Any] | None, key: str, unit: str, baseline: float | None) -> str:
    if result is None:
        return ""
    if "error" in result:
        return "skipped" if result["error"].startswith("skipped") else "failed"
    value = result[key]
    text = format_value(value, unit)
    if baseline:
        text += f" ({value / baseline:.2f}x)"
    return text


def render_table(args: argparse.Namespace, results: dict[str, dict[str, Any]], ceiling_results: dict[str, Any]) -> str:
    systems = [SYSTEMS_BY_NAME[name] for name in args.systems]
    header = ["Scenario", "Unit", *(s.label for s in systems), "PostgreSQL ceiling"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]

    for row in table_rows(args):
        if row.scenario not in args.scenarios:
            continue
        gendurable_result = results.get("gendurable", {}).get(row.scenario)
        baseline = None
        if gendurable_result and "error" not in gendurable_result:
            baseline = gendurable_result[row.key]
        cells = [
            format_cell(results.get(s.name, {}).get(row.scenario), row.key, row.unit, baseline)
            for s in systems
        ]
        ceiling_cell = ""
        if row.scenario == "insert_bulk" and "copy" in ceiling_results:
            ceiling_cell = "COPY: " + format_cell(ceiling_results["copy"], "jobs_per_s", "jobs/s", baseline)
        lines.append("| " + " | ".join([row.label, row.unit, *cells, ceiling_cell]) + " |")

    if "copy" in ceiling_results and "insert_bulk" not in args.scenarios:
        copy_cell = format_cell(ceiling_results["copy"], "jobs_per_s", "jobs/s", None)
        blanks = [""] * len(systems)
        lines.append("| " + " | ".join([f"COPY {args.jobs:,} rows into a plain table", "jobs/s", *blanks, copy_cell]) + " |")
    for clients in (1, 8):
        result = ceiling_results.get(f"pgbench_{clients}")
        if result:
            label = f"pgbench single-row UPDATE, {clients} client{'s' if clients > 1 else ''}, {PGBENCH_SECONDS} s"
            blanks = [""] * len(systems)
            lines.append("| " + " | ".join([label, "tx/s", *blanks, f"{result['tx_per_s']:,.0f}"]) + " |")
    return "\n".join(lines)


def format_runs(result: dict[str, Any]) -> str:
    if "all_runs" not in result:
        return ""
    values = []
    for value in result["all_runs"]:
        if isinstance(value, float):
            values.append(f"{value:,.0f}" if value >= 100 else f"{value:.2f}")
        else:
            values.append(str(value))
    return f" (all runs: {', '.join(values)})"


def render_details(
    args: argparse.Namespace, results: dict[str, dict[str, Any]], ceiling_results: dict[str, Any]
) -> str:
    lines = []
    for name, result in ceiling_results.items():
        if "all_runs" in result:
            lines.append(f"- ceiling {name}{format_runs(result)}")
    for name in args.systems:
        for scenario, result in results.get(name, {}).items():
            if "error" in result:
                lines.append(f"- {name} {scenario}: {result['error']}")
            elif scenario.startswith("processing"):
                after = result.get("jobs_per_s_after_first")
                line = (
                    f"- {name} {scenario}: {result['seconds']:.2f} s in total, first job finished after "
                    f"{result['first_finished_s']:.2f} s"
                )
                if after:
                    line += f", {after:,.0f} jobs/s from then on"
                if result.get("workers_exited_before_stop"):
                    line += f"; worker exit codes before stop: {result['workers_exited_before_stop']}"
                lines.append(line + format_runs(result))
            elif scenario == "latency":
                line = (
                    f"- {name} latency: mean {result['mean_ms']:.2f} ms, max {result['max_ms']:.1f} ms, "
                    f"{result['received']} of {result['jobs']} probes received"
                )
                lines.append(line + format_runs(result))
            elif "all_runs" in result:
                lines.append(f"- {name} {scenario}{format_runs(result)}")
    return "\n".join(lines)


def write_report(
    args: argparse.Namespace,
    command: str,
    started: datetime.datetime,
    duration_s: float,
    table: str,
    details: str,
    machine: dict[str, str],
    versions: dict[str, str],
    raw: dict[str, Any],
) -> None:
    args.output.parent.mkdir(parents=True, exist_ok=True)
    if args.repeat == 1:
        repeat_text = "Each figure comes from one run."
    else:
        repeat_text = (
            f"Each scenario ran {args.repeat} times. The table shows the run with the median "
            "jobs/s (for delays, the median p50), and the details list every run's value."
        )
    version_text = ", ".join(f"{name} {version}" for name, version in versions.items())
    text = f"""# gendurable benchmark results

Command (from the repository root): `{command}`

Started {started:%Y-%m-%d %H:%M} UTC, took {duration_s / 60:.1f} min. 1-minute load average before the run: {machine['load_average']}.

Machine: {machine['cpu']}, {machine['memory']} RAM, {machine['os']}.
Server: {machine['postgres']} on {PG_HOST}:{PG_PORT} ({machine['postgres_settings']}); Redis on 127.0.0.1:6379 for Celery.
Versions: {version_text}; gendurable ran on Python {machine['gendurable_python']}.

{repeat_text}
Ratios in brackets are the value divided by gendurable's value in the same row.
For jobs/s and tx/s higher is better; for delays (ms) lower is better.
bench/README.md describes what each row measures.

{table}

Details:

{details or "(none)"}
"""
    args.output.write_text(text)
    args.output.with_suffix(".json").write_text(json.dumps(raw, indent=2) + "\n")


def main() -> None:
    args = parse_args()
    if not shutil.which(ceiling.PGBENCH) and "pgbench" in args.scenarios:
        raise SystemExit(f"{ceiling.PGBENCH} not found; install postgresql-client or drop the pgbench scenario")
    command = shlex.join([os.path.relpath(sys.executable, REPO_DIR), "bench/run.py", *sys.argv[1:]])
    load_at_start = os.getloadavg()[0]
    if load_at_start > BUSY_LOAD_AVERAGE:
        log(f"warning: 1-minute load average is {load_at_start:.2f}; other processes will skew the results")
    started = datetime.datetime.now(datetime.timezone.utc)
    start = time.monotonic()

    results = {name: run_system(SYSTEMS_BY_NAME[name], args) for name in args.systems}
    ceiling_results = run_ceiling(args)
    duration_s = time.monotonic() - start

    machine = describe_machine()
    # Only the value at start: later ones include the benchmark's own processes.
    machine["load_average"] = f"{load_at_start:.2f}"
    versions = package_versions()
    table = render_table(args, results, ceiling_results)
    details = render_details(args, results, ceiling_results)
    raw = {
        "command": command,
        "started": started.isoformat(),
        "machine": machine,
        "versions": versions,
        "systems": results,
        "ceiling": ceiling_results,
    }
    write_report(args, command, started, duration_s, table, details, machine, versions, raw)

    print(table)
    if details:
        print("\n" + details)
    print(f"\nWrote {os.path.relpath(args.output, REPO_DIR)} in {duration_s / 60:.1f} min.")


if __name__ == "__main__":
    main()
