"""Worker processes woken through kombu: Redis and RabbitMQ in place of LISTEN/NOTIFY.

A worker whose ``wakeup`` is a broker URL starts a KombuListener instead of the PostgreSQL
listener (see ``Worker.__init__``), so it opens no LISTEN connection at all, and the tests
check that none exists. Its polls come once a minute, so a job done within the deadline was
woken through the broker by the test app's publish. The LISTEN/NOTIFY channel, and its
reconnection after ``pg_terminate_backend``, is covered by ``test_wakeup.py``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gendurable import App

from ..integration.test_wakeup_kombu import (
    BROKERS,
    DEAD_REDIS_URL,
    SHOWN,
    broker_ports,
    close_broker_connections,
    require_broker,
    subscribed,
)
from . import jobs_app
from .support import wait_until

pytestmark = pytest.mark.slow

RARE_POLLS = {"poll_interval": 60}
WAKEUP_DEADLINE = 15.0


@pytest.fixture
def wakeup_app(database_url) -> Iterator:
    """Build the test's App with a given wakeup channel, made current; close it at the end."""
    apps: list[App] = []

    def build(url: str) -> App:
        app = App(database_url, wakeup=url, queues=jobs_app.app.queues, include=())
        app.set_current()
        apps.append(app)
        return app

    yield build
    for app in apps:
        app.close()


def postgres_listeners(db) -> int:
    return int(db.value(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND application_name = 'gendurable listener'"
    ))


@pytest.mark.parametrize("url", BROKERS)
def test_broker_wakes_worker(wakeup_app, db, cluster, url):
    require_broker(url)
    wakeup_app(url)
    worker = cluster.worker(wakeup=url, **RARE_POLLS)
    wait_until(lambda: subscribed(worker.pid, url), "the worker subscribes to wakeups")

    first = jobs_app.record.apply_async(args=(1,), connection=db.conn).id
    wait_until(lambda: db.status(first) == "done", "the first job is done", WAKEUP_DEADLINE)
    # The worker's start-up picks are over: only a wakeup makes it pick before a minute.
    second = jobs_app.record.apply_async(args=(2,), connection=db.conn).id
    wait_until(lambda: db.status(second) == "done", "the woken worker ran the second job",
               WAKEUP_DEADLINE)
    assert postgres_listeners(db) == 0

    # The broker drops the worker's connections: a job inserted meanwhile is found when the
    # listener looks after reconnecting, and the next one through the new subscription.
    closed = close_broker_connections(url, broker_ports(worker.pid, url))
    assert closed >= 1
    third = jobs_app.record.apply_async(args=(3,), connection=db.conn).id
    wait_until(lambda: db.status(third) == "done", "the job inserted during the outage ran",
               WAKEUP_DEADLINE)
    worker.wait_log(f"wakeup listener reconnected to {SHOWN[url]}")
    wait_until(lambda: subscribed(worker.pid, url), "the worker subscribes again")
    fourth = jobs_app.record.apply_async(args=(4,), connection=db.conn).id
    wait_until(lambda: db.status(fourth) == "done", "the reconnected worker was woken",
               WAKEUP_DEADLINE)

    assert [db.count_executions(job) for job in (first, second, third, fourth)] == [1, 1, 1, 1]
    assert f"wakeup listener lost {SHOWN[url]} (" in worker.log()
    assert "Traceback" not in worker.log()
    assert worker.popen.poll() is None


def test_lost_wakeups_cost_one_poll(wakeup_app, db, cluster, caplog):
    # Nothing listens on this loopback port: every wakeup is lost, and polls find the work.
    wakeup_app(DEAD_REDIS_URL)
    worker = cluster.worker(wakeup=DEAD_REDIS_URL, poll_interval=1)
    worker.wait_log(f"wakeup listener lost {DEAD_REDIS_URL} (")

    with caplog.at_level("WARNING", logger="gendurable.worker"):
        handle = jobs_app.record.apply_async(args=(1,), connection=db.conn)

    assert handle.inserted
    assert any(
        record.getMessage().startswith(f"could not publish a wakeup to {DEAD_REDIS_URL} (")
        for record in caplog.records
    )
    wait_until(lambda: db.status(handle.id) == "done", "a poll found the job", 20)
    assert db.count_executions(handle.id) == 1
    assert worker.popen.poll() is None
