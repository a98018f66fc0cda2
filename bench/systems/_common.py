"""Helpers shared by the system modules: probe reporting and a side connection."""

from __future__ import annotations

import os
import socket
import time
from typing import Any

import psycopg

_probe_socket: socket.socket | None = None


def report_probe_start(probe_id: int) -> None:
    """Send this job's start time to the harness's UDP socket on 127.0.0.1.

    The port comes from BENCH_UDP_PORT, which the harness sets only for the
    latency scenario. Probe jobs never run in other scenarios.
    """
    started_at = time.time()
    global _probe_socket
    if _probe_socket is None:
        _probe_socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    port = int(os.environ["BENCH_UDP_PORT"])
    _probe_socket.sendto(f"{probe_id} {started_at!r}".encode(), ("127.0.0.1", port))


def benchmark_dsn() -> str:
    dsn = os.environ.get("BENCH_DSN")
    if not dsn:
        raise RuntimeError("BENCH_DSN is not set; start workers through bench/harness.py")
    return dsn


class AdminConnection:
    """Autocommit connection, separate from the system's own, for counting and clearing.

    It is asynchronous so that a system's background tasks on the same event
    loop keep running while it waits: a blocking TRUNCATE would wait forever
    for the lock of a transaction that such a task cannot finish.
    """

    def __init__(self, connection: psycopg.AsyncConnection[Any]):
        self.connection = connection

    @classmethod
    async def connect(cls, dsn: str) -> AdminConnection:
        return cls(await psycopg.AsyncConnection.connect(dsn, autocommit=True))

    async def count(self, sql: str) -> int:
        cursor = await self.connection.execute(sql)
        row = await cursor.fetchone()
        assert row is not None
        return int(row[0])

    async def execute(self, sql: str) -> None:
        await self.connection.execute(sql)

    async def close(self) -> None:
        await self.connection.close()
