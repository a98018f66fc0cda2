"""gendurable from this repository, on its own virtualenv (/work/main/.venv).

Jobs are plain functions, as in the example of gendurable's README.
gendurable also runs `async def` jobs on one event loop, which this benchmark
does not measure. The worker runs with --burst, so it exits once nothing is
runnable. The timer still stops when the database shows every job finished,
as for the other systems.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from bench.systems._common import AdminConnection, benchmark_dsn

# The app module reads its URL from this variable when it is imported below.
os.environ["GENDURABLE_DATABASE_URL"] = benchmark_dsn()

from bench.gendurable_app import app, noop, probe  # noqa: E402

NAME = "gendurable"


def worker_command(concurrency: int, burst: bool) -> list[str]:
    argv = [
        str(Path(sys.executable).parent / "gendurable"),
        "worker",
        "-A",
        "bench.gendurable_app:app",
        "--queues",
        f"default={concurrency}",
    ]
    if burst:
        argv.append("--burst")
    return argv


def worker_env(dsn: str) -> dict[str, str]:
    return {"GENDURABLE_DATABASE_URL": dsn}


class Client:
    def __init__(self, dsn: str):
        self.dsn = dsn

    async def __aenter__(self) -> Client:
        self.admin = await AdminConnection.connect(self.dsn)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        app.close()
        await self.admin.close()

    async def install(self) -> None:
        app.migrate()

    async def insert_one(self, i: int) -> None:
        noop.delay(i)

    async def insert_bulk(self, ids: list[int]) -> None:
        app.insert_all([noop.new(i) for i in ids])

    async def insert_probe(self, probe_id: int) -> None:
        probe.delay(probe_id)

    async def count_unfinished(self) -> int:
        return await self.admin.count(
            "SELECT count(*) FROM gen_durable WHERE status IN ('available', 'running', 'awaiting')"
        )

    async def clear(self) -> None:
        await self.admin.execute("TRUNCATE gen_durable, gen_durable_signals")
