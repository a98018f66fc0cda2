"""Celery (pinned in bench/requirements-peers.txt) with Redis as broker and no result backend.

Celery does not store jobs in PostgreSQL, so "insert" is a publish to the
Redis list that backs the queue, and a job counts as finished once its
message has left both that list and kombu's "unacked" hash. Celery's default
is to acknowledge a message just before the task runs, so the last no-op
task may still be running when the count reaches zero.

The Redis database number below is used only by this benchmark, and the
harness empties it with FLUSHDB before each scenario.
"""

from __future__ import annotations

import sys
from pathlib import Path

import redis
from celery import Celery, group

from bench.systems._common import report_probe_start

NAME = "celery"

REDIS_URL = "redis://127.0.0.1:6379/13"

app = Celery("bench", broker=REDIS_URL)


@app.task(name="noop")
def noop(i: int) -> None:
    return None


@app.task(name="probe")
def probe(probe_id: int) -> None:
    report_probe_start(probe_id)


def worker_command(concurrency: int, burst: bool) -> list[str]:
    # Celery has no mode that exits once the queue is empty, so burst is
    # ignored and the harness stops the worker with SIGTERM.
    return [
        str(Path(sys.executable).parent / "celery"),
        "-A",
        "bench.systems.celery:app",
        "worker",
        "--concurrency",
        str(concurrency),
    ]


class Client:
    """Publisher on the module-level app. It ignores dsn, because Celery keeps nothing in PostgreSQL."""

    def __init__(self, dsn: str):
        self.redis = redis.Redis.from_url(REDIS_URL)

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.redis.close()

    async def install(self) -> None:
        return None

    async def insert_one(self, i: int) -> None:
        noop.apply_async((i,))

    async def insert_bulk(self, ids: list[int]) -> None:
        # A group is Celery's API for sending many tasks at once, but kombu
        # still sends one message (one LPUSH) per task.
        group(noop.s(i) for i in ids).apply_async()

    async def insert_probe(self, probe_id: int) -> None:
        probe.apply_async((probe_id,))

    async def count_unfinished(self) -> int:
        with self.redis.pipeline() as pipe:
            pipe.llen("celery")
            pipe.hlen("unacked")
            queued, unacked = pipe.execute()
        return int(queued) + int(unacked)

    async def clear(self) -> None:
        self.redis.flushdb()
