"""The kombu wakeup channel on a real Redis and a real RabbitMQ, in this process.

The brokers must run on loopback (CI starts them): Redis at 127.0.0.1:6379, whose database 5
these tests use alone, and RabbitMQ at 127.0.0.1:5672 with the guest user. A broker that is
not reachable fails the test with a message saying so.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import redis

from gendurable import App
from gendurable._wakeup.kombu import KombuListener, KombuPublisher
from gendurable.errors import ConfigurationError

from ..acceptance.support import wait_until
from .helpers import row_count
from .test_beat_schedule_support import tick_job

REDIS_URL = "redis://127.0.0.1:6379/5"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"
BROKERS = [pytest.param(REDIS_URL, id="redis"), pytest.param(AMQP_URL, id="rabbitmq")]
# How log lines show each URL: without the password.
SHOWN = {REDIS_URL: REDIS_URL, AMQP_URL: "amqp://guest:***@127.0.0.1:5672//"}
# Loopback ports where nothing listens: publishing there fails at once.
DEAD_REDIS_URL = "redis://127.0.0.1:1/0"
DEAD_AMQP_URL = "amqp://guest:guest@127.0.0.1:1//"


def require_broker(url: str) -> str:
    """Return ``url`` if its broker accepts TCP connections, else fail the test saying so."""
    parts = urlsplit(url)
    try:
        socket.create_connection((parts.hostname, parts.port), timeout=2).close()
    except OSError as exc:
        pytest.fail(
            f"the broker at {parts.hostname}:{parts.port} ({parts.scheme}) is not reachable: "
            f"{exc}; these tests need Redis and RabbitMQ running on loopback"
        )
    return url


def broker_ports(pid: int, url: str) -> set[int]:
    """Return the local ports of process ``pid``'s TCP connections to the broker of ``url``.

    Reads /proc (Linux): the process's socket inodes, then the TCP tables of its network
    namespace.
    """
    port = urlsplit(url).port
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    ports = set()
    for table in ("tcp", "tcp6"):
        with open(f"/proc/{pid}/net/{table}") as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
                # State 01 is ESTABLISHED.
                if inode in inodes and state == "01" and int(remote.rsplit(":", 1)[1], 16) == port:
                    ports.add(int(local.rsplit(":", 1)[1], 16))
    return ports


def rabbitmqctl(*args: str, table: bool = True) -> list[list[str]]:
    """Run ``rabbitmqctl ARGS --quiet``; return the rows of the table it lists, split at tabs."""
    command = shutil.which("rabbitmqctl")
    if command is None:
        pytest.fail("rabbitmqctl is not on PATH: it is needed to inspect or close one RabbitMQ "
                    "connection without touching the others")
    output = subprocess.run(
        [command, *args, "--quiet", *(["--no-table-headers"] if table else [])],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout
    return [line.split("\t") for line in output.splitlines() if line.strip()]


def subscribed(pid: int, url: str) -> bool:
    """Return whether process ``pid`` consumes wakeups from the broker of ``url``.

    A listener may connect before it subscribes, and a wakeup published in between is lost,
    so tests wait for this before they publish.
    """
    ports = broker_ports(pid, url)
    if url.startswith("redis"):
        client = redis.Redis(host="127.0.0.1", port=6379, db=5)
        try:
            clients = client.client_list()
        finally:
            client.close()
        return any(
            int(entry["addr"].rsplit(":", 1)[1]) in ports
            and int(entry["sub"]) + int(entry["psub"]) > 0
            for entry in clients
        )
    channels = dict(rabbitmqctl("list_channels", "pid", "name"))
    for row in rabbitmqctl("list_consumers", "queue_name", "channel_pid"):
        [queue] = [field for field in row if field.startswith("gendurable.wakeup.")] or [None]
        [channel] = [field for field in row if field.startswith("<")] or [None]
        # A channel's name reads "127.0.0.1:PORT -> 127.0.0.1:5672 (1)".
        name = channels.get(channel, "")
        if queue and any(name.startswith(f"127.0.0.1:{port} ->") for port in ports):
            return True
    return False


def close_broker_connections(url: str, ports: set[int]) -> int:
    """Make the broker close its connections from these local ports; return how many it closed.

    Redis closes them with CLIENT KILL; RabbitMQ with ``rabbitmqctl close_connection``.
    """
    assert ports, "no connection to close"
    if url.startswith("redis"):
        client = redis.Redis(host="127.0.0.1", port=6379, db=5)
        try:
            return sum(1 for port in ports if client.client_kill(f"127.0.0.1:{port}"))
        finally:
            client.close()
    closed = 0
    for connection, peer_port in rabbitmqctl("list_connections", "pid", "peer_port"):
        if int(peer_port) in ports:
            rabbitmqctl("close_connection", connection, "closed by a gendurable test", table=False)
            closed += 1
    return closed


class Received:
    """Records what a listener passes to ``on_work`` and ``on_cancel``."""

    def __init__(self) -> None:
        self.work: list[str | None] = []
        self.cancels: list[int] = []
        self._lock = threading.Lock()

    def on_work(self, queue: str | None) -> None:
        with self._lock:
            self.work.append(queue)

    def on_cancel(self, instance_id: int) -> None:
        with self._lock:
            self.cancels.append(instance_id)

    def count(self, queue: str | None) -> int:
        with self._lock:
            return self.work.count(queue)


@pytest.fixture
def listen() -> Iterator:
    """Start KombuListeners in this process; stop them all at the end."""
    stop = threading.Event()
    started: list[KombuListener] = []

    def start(url: str) -> tuple[KombuListener, Received]:
        received = Received()
        listener = KombuListener(url, received.on_work, received.on_cancel, stop)
        listener.start()
        started.append(listener)
        assert listener.listening.wait(10), f"the listener did not connect to {url}"
        wait_until(lambda: subscribed(os.getpid(), url), f"the listener subscribes at {url}")
        return listener, received

    yield start
    stop.set()
    for listener in started:
        listener.join(timeout=10)
        assert not listener.is_alive(), "a listener did not stop"


@pytest.mark.parametrize("url", BROKERS)
def test_inserts_publish_to_listener(make_app, listen, gendurable_app, url):
    require_broker(url)
    listener, received = listen(url)
    app = make_app(wakeup=url, queues={"reports": 1})

    tick_job.apply_async(queue="reports")
    wait_until(lambda: received.count("reports"), "the listener hears the insert into reports")
    app.insert_all([tick_job.new("a"), tick_job.new("b", _queue="reports")])
    wait_until(lambda: received.count("default"), "the listener hears the batch insert")

    assert app.wakeup.needs_insert_wakeups
    assert received.count("reports") == 2
    assert received.count("default") == 1
    assert listener.is_alive()


@pytest.mark.parametrize("url", BROKERS)
def test_cancel_of_running_publishes(make_app, listen, db, url):
    require_broker(url)
    _, received = listen(url)
    app = make_app(wakeup=url)
    handle = tick_job.delay()
    db.execute(
        "UPDATE gen_durable SET status = 'running', lease_owner = 'elsewhere', attempt = 1, "
        "lease_expires_at = now() + interval '1 minute' WHERE id = %s",
        (handle.id,),
    )

    assert app.cancel(handle.id) == "running"

    wait_until(lambda: received.cancels == [handle.id], "the listener hears the cancel request")


@pytest.mark.parametrize("url", BROKERS)
def test_listener_reconnects_after_broker_closes(make_app, listen, db, url, caplog):
    require_broker(url)
    before = broker_ports(os.getpid(), url)
    listener, received = listen(url)
    make_app(wakeup=url)
    tick_job.delay()
    wait_until(lambda: received.count("default") == 1, "the listener hears the first insert")
    # The listener's connections and the app's publishing connection.
    ports = broker_ports(os.getpid(), url) - before

    with caplog.at_level(logging.INFO, logger="gendurable.worker"):
        assert close_broker_connections(url, ports) >= 2
        # The listener looks once for work after each connect, so a second None means it
        # connected again.
        wait_until(lambda: received.count(None) == 2, "the listener reconnects")
        wait_until(lambda: subscribed(os.getpid(), url), "the listener subscribes again")

        tick_job.delay()
        wait_until(lambda: received.count("default") == 2,
                   "the reconnected listener hears an insert by the reconnected publisher")

    assert listener.is_alive()
    messages = [record.getMessage() for record in caplog.records]
    assert any(message.startswith(f"wakeup listener lost {SHOWN[url]} (") for message in messages)
    assert f"wakeup listener reconnected to {SHOWN[url]}" in messages
    assert row_count(db) == 2


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        pytest.param(DEAD_REDIS_URL, DEAD_REDIS_URL, id="redis"),
        pytest.param(DEAD_AMQP_URL, "amqp://guest:***@127.0.0.1:1//", id="rabbitmq"),
    ],
)
def test_unreachable_broker_insert_warns(make_app, db, url, shown, caplog):
    app = make_app(wakeup=url)

    with caplog.at_level(logging.WARNING, logger="gendurable.worker"):
        first = tick_job.delay()
        second = tick_job.delay()

    assert first.inserted
    assert second.inserted
    assert row_count(db) == 2
    # One warning for both inserts: repeats within ten seconds are not logged.
    [warning] = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert warning.getMessage().startswith(f"could not publish a wakeup to {shown} (")
    assert "at their next poll" in warning.getMessage()
    assert app.drain() == {"done": 2}


@pytest.mark.parametrize("url", ["reddis://127.0.0.1:6379/5", "postgresql://127.0.0.1/db"])
def test_invalid_wakeup_url_rejected_at_start(url):
    with pytest.raises(ConfigurationError, match=f"invalid wakeup channel '{url}'.*'postgres'"):
        KombuPublisher(url)
    with pytest.raises(ConfigurationError, match=f"invalid wakeup channel '{url}'"):
        KombuListener(url, print, print, threading.Event())


def test_invalid_wakeup_url_rejected_by_app(gendurable_database_url):
    # The App must reject a channel it can never publish to. Accepted, it makes every
    # insert commit its row and then raise.
    with pytest.raises(ConfigurationError, match="reddis://127.0.0.1:6379/5"):
        App(gendurable_database_url, include=(), wakeup="reddis://127.0.0.1:6379/5")
