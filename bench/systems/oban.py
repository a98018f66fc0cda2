"""oban, the Python port (pinned in bench/requirements-peers.txt), run by `oban start`.

`oban start` has no mode that exits once the queue is empty, so the harness
stops the worker with SIGTERM after the database shows every job finished.
Finished jobs stay in oban_jobs in state "completed" until the pruner
removes them (default: after one day).
"""

from __future__ import annotations

import sys
from pathlib import Path

from oban import Job, Oban, worker
from oban.schema import install_sql

from bench.systems._common import AdminConnection, report_probe_start

NAME = "oban"


@worker(queue="default")
class Noop:
    async def process(self, job: Job) -> None:
        return None


@worker(queue="default")
class Probe:
    async def process(self, job: Job) -> None:
        report_probe_start(job.args["probe_id"])


def worker_command(concurrency: int, burst: bool) -> list[str]:
    return [
        str(Path(sys.executable).parent / "oban"),
        "start",
        "--queues",
        f"default:{concurrency}",
        # Without this, oban's cron discovery greps the working directory and
        # tries to import files under bench/.venv-peers, because it skips only
        # directories named .venv, venv and .tox. This module has no cron jobs.
        "--cron-modules",
        "bench.systems.oban",
    ]


def worker_env(dsn: str) -> dict[str, str]:
    return {"OBAN_DSN": dsn}


class Client:
    def __init__(self, dsn: str):
        self.dsn = dsn

    async def __aenter__(self) -> Client:
        self.admin = await AdminConnection.connect(self.dsn)
        self.pool = await Oban.create_pool(self.dsn)
        # No queues, so this instance only inserts (oban's client mode). It is
        # started after install, because its stager queries oban_jobs.
        self.oban = Oban(pool=self.pool)
        if await self.admin.count("SELECT count(*) FROM pg_class WHERE relname = 'oban_jobs'"):
            await self.oban.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.oban.stop()
        await self.pool.close()
        await self.admin.close()

    async def install(self) -> None:
        await self.admin.execute(install_sql())
        await self.oban.start()

    async def insert_one(self, i: int) -> None:
        await self.oban.enqueue(Noop.new({"i": i}))

    async def insert_bulk(self, ids: list[int]) -> None:
        await self.oban.enqueue_many(Noop.new({"i": i}) for i in ids)

    async def insert_probe(self, probe_id: int) -> None:
        await self.oban.enqueue(Probe.new({"probe_id": probe_id}))

    async def count_unfinished(self) -> int:
        return await self.admin.count(
            "SELECT count(*) FROM oban_jobs "
            "WHERE state IN ('available', 'scheduled', 'executing', 'retryable')"
        )

    async def clear(self) -> None:
        await self.admin.execute("TRUNCATE oban_jobs")
