"""PgQueuer (pinned in bench/requirements-peers.txt) on asyncpg, its default driver.

PgQueuer has no single per-worker concurrency setting. It dequeues
--batch-size jobs at a time (default 10) and runs each as an asyncio task,
and --max-concurrent-tasks (default: no bound) must be at least twice the
batch size. The benchmark therefore maps concurrency 10 to --batch-size 10,
PgQueuer's default, and leaves --max-concurrent-tasks unset. With no-op jobs
that keeps about one batch in flight. A strict bound of 10 would need
--batch-size 5 --max-concurrent-tasks 10, which measured about 30% slower
on the 2-core development machine that bench/results/latest.md describes.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
from pgqueuer import PgQueuer, Queries
from pgqueuer.models import Job

from bench.systems._common import AdminConnection, benchmark_dsn, report_probe_start

NAME = "pgqueuer"


@contextlib.asynccontextmanager
async def create_pgqueuer() -> AsyncIterator[PgQueuer]:
    """Build the worker for `pgq run bench.systems.pgqueuer:create_pgqueuer`."""
    connection = await asyncpg.connect(benchmark_dsn())
    pgq = PgQueuer.from_asyncpg_connection(connection)

    @pgq.entrypoint("noop")
    async def noop(job: Job) -> None:
        return None

    @pgq.entrypoint("probe")
    async def probe(job: Job) -> None:
        assert job.payload is not None
        report_probe_start(int(job.payload))

    try:
        yield pgq
    finally:
        await connection.close()


def worker_command(concurrency: int, burst: bool) -> list[str]:
    argv = [
        str(Path(sys.executable).parent / "pgq"),
        "run",
        "bench.systems.pgqueuer:create_pgqueuer",
        "--batch-size",
        str(concurrency),
    ]
    if burst:
        argv += ["--mode", "drain"]
    return argv


class Client:
    def __init__(self, dsn: str):
        self.dsn = dsn

    async def __aenter__(self) -> Client:
        self.connection = await asyncpg.connect(self.dsn)
        self.queries = Queries.from_asyncpg_connection(self.connection)
        self.admin = await AdminConnection.connect(self.dsn)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.connection.close()
        await self.admin.close()

    async def install(self) -> None:
        await self.queries.install()

    async def insert_one(self, i: int) -> None:
        await self.queries.enqueue("noop", str(i).encode())

    async def insert_bulk(self, ids: list[int]) -> None:
        await self.queries.enqueue(
            ["noop"] * len(ids), [str(i).encode() for i in ids], [0] * len(ids)
        )

    async def insert_probe(self, probe_id: int) -> None:
        await self.queries.enqueue("probe", str(probe_id).encode())

    async def count_unfinished(self) -> int:
        # Finished jobs move from the queue table to pgqueuer_log.
        return await self.admin.count("SELECT count(*) FROM pgqueuer")

    async def clear(self) -> None:
        await self.admin.execute("TRUNCATE pgqueuer, pgqueuer_log, pgqueuer_statistics")
