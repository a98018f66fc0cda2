"""Procrastinate (pinned in bench/requirements-peers.txt) with its psycopg 3 connector.

The tasks are coroutines, because Procrastinate documents --concurrency for
asynchronous jobs ("Do not use concurrency if you have synchronous blocking
tasks", App.run_worker_async in 3.10.0). Jobs stay in procrastinate_jobs when they
finish (the default --delete-jobs is "never").
"""

from __future__ import annotations

import sys
from pathlib import Path

from procrastinate import App, PsycopgConnector

from bench.systems._common import AdminConnection, benchmark_dsn, report_probe_start

NAME = "procrastinate"

# The harness and the worker environment both set BENCH_DSN before this
# module is imported.
app = App(connector=PsycopgConnector(conninfo=benchmark_dsn()))


@app.task(name="noop")
async def noop(i: int) -> None:
    return None


@app.task(name="probe")
async def probe(probe_id: int) -> None:
    report_probe_start(probe_id)


def worker_command(concurrency: int, burst: bool) -> list[str]:
    argv = [
        str(Path(sys.executable).parent / "procrastinate"),
        "--app",
        "bench.systems.procrastinate.app",
        "worker",
        "--concurrency",
        str(concurrency),
    ]
    if burst:
        argv.append("--one-shot")
    return argv


class Client:
    """Client on the module-level app, whose URL is BENCH_DSN (equal to dsn)."""

    def __init__(self, dsn: str):
        self.dsn = dsn

    async def __aenter__(self) -> Client:
        await app.open_async()
        self.admin = await AdminConnection.connect(self.dsn)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await app.close_async()
        await self.admin.close()

    async def install(self) -> None:
        await app.schema_manager.apply_schema_async()

    async def insert_one(self, i: int) -> None:
        await noop.defer_async(i=i)

    async def insert_bulk(self, ids: list[int]) -> None:
        await noop.batch_defer_async(*({"i": i} for i in ids))

    async def insert_probe(self, probe_id: int) -> None:
        await probe.defer_async(probe_id=probe_id)

    async def count_unfinished(self) -> int:
        return await self.admin.count(
            "SELECT count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing')"
        )

    async def clear(self) -> None:
        await self.admin.execute(
            "TRUNCATE procrastinate_jobs, procrastinate_events, procrastinate_periodic_defers"
        )
