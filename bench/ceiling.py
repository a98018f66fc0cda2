"""Measure what the PostgreSQL server itself allows, as a ceiling for the job systems.

Two figures: COPY of job-like rows into a plain table (a bound for bulk
insert), and pgbench's rate of single-row UPDATE transactions (a bound for
anything that commits once per job).
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

PGBENCH = "/usr/bin/pgbench"

# Rows in the pgbench table. Small enough to stay in shared buffers, large
# enough that 8 clients choosing ids at random rarely wait on the same row.
PGBENCH_ROWS = 1000

PGBENCH_SCRIPT = f"""\\set id random(1, {PGBENCH_ROWS})
UPDATE t SET v = v + 1 WHERE id = :id;
"""

COPY_WARMUP_ROWS = 100


def measure_copy(dsn: str, rows: int) -> dict[str, Any]:
    """Time COPY of `rows` job-like rows into a plain table, in one transaction."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS copy_ceiling")
        conn.execute(
            "CREATE TABLE copy_ceiling ("
            " id bigserial PRIMARY KEY,"
            " task text NOT NULL,"
            " args jsonb NOT NULL,"
            " status text NOT NULL DEFAULT 'available',"
            " created_at timestamptz NOT NULL DEFAULT now())"
        )
        _copy_rows(conn, COPY_WARMUP_ROWS)
        conn.execute("TRUNCATE copy_ceiling")
        conn.execute("CHECKPOINT")

        start = time.perf_counter()
        _copy_rows(conn, rows)
        elapsed = time.perf_counter() - start

        conn.execute("DROP TABLE copy_ceiling")
    return {"jobs": rows, "seconds": elapsed, "jobs_per_s": rows / elapsed}


def _copy_rows(conn: psycopg.Connection[Any], rows: int) -> None:
    with conn.transaction():
        with conn.cursor() as cursor:
            with cursor.copy("COPY copy_ceiling (task, args) FROM STDIN") as copy:
                for i in range(rows):
                    copy.write_row(("noop", json.dumps({"i": i})))


def prepare_pgbench_table(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS t")
        conn.execute("CREATE TABLE t (id integer PRIMARY KEY, v bigint NOT NULL DEFAULT 0)")
        conn.execute("INSERT INTO t (id) SELECT generate_series(1, %s)", (PGBENCH_ROWS,))
        conn.execute("VACUUM ANALYZE t")
        conn.execute("CHECKPOINT")


def measure_pgbench(conninfo: dict[str, str], clients: int, seconds: int) -> dict[str, Any]:
    """Run pgbench's custom UPDATE script and return its transactions per second."""
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as script:
        script.write(PGBENCH_SCRIPT)
    try:
        argv = [
            PGBENCH,
            "--no-vacuum",
            "--host", conninfo["host"],
            "--port", conninfo["port"],
            "--username", conninfo["user"],
            "--file", script.name,
            "--client", str(clients),
            "--jobs", str(min(clients, 2)),
            "--time", str(seconds),
            conninfo["dbname"],
        ]  # fmt: skip
        completed = subprocess.run(
            argv, capture_output=True, text=True, timeout=seconds + 60, check=False
        )
    finally:
        Path(script.name).unlink()
    if completed.returncode != 0:
        raise RuntimeError(f"pgbench failed with exit code {completed.returncode}: {completed.stderr}")
    match = re.search(r"^tps = ([0-9.]+)", completed.stdout, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"no 'tps = ' line in pgbench output:\n{completed.stdout}")
    return {
        "clients": clients,
        "seconds": seconds,
        "tx_per_s": float(match.group(1)),
        "threads": min(clients, 2),
    }
