"""Queues: names checked at insert, per-queue settings, worker specs, pause and resume."""

from __future__ import annotations

import pytest

from gendurable import Queue, durable_job
from gendurable.errors import InvalidOption, UnknownQueue

from .helpers import row_count


@durable_job
def plain(n: int) -> int:
    return n


@durable_job(queue="queues_emails")
def email(n: int) -> int:
    return n


def test_unknown_queue_suggests_nearest(gendurable_app, db):
    with pytest.raises(UnknownQueue, match=r"'queues_emials' \(did you mean 'queues_emails'\?\)"):
        plain.apply_async(args=(1,), queue="queues_emials")
    assert row_count(db) == 0


def test_unknown_queue_lists_known(gendurable_app):
    with pytest.raises(UnknownQueue, match="known queues: .*default"):
        plain.apply_async(args=(1,), queue="nowhere")


def test_declared_queue_accepts_inserts(gendurable_app, make_app):
    make_app(queues={"declared_only": Queue(concurrency=4, global_limit=2)})

    handle = plain.apply_async(args=(1,), queue="declared_only")

    assert handle.status() == "available"


def test_queue_settings_kept(make_app):
    app = make_app(queues={"mail": Queue(concurrency=4, global_limit=2), "bulk": 3})

    assert app.queues["mail"] == Queue(concurrency=4, global_limit=2)
    assert app.queues["bulk"] == Queue(concurrency=3)
    assert app.global_limit("mail") == 2
    assert app.global_limit("bulk") is None
    assert app.global_limit("default") is None


@pytest.mark.parametrize(
    ("options", "quoted"),
    [
        ({"concurrency": 0}, "0"),
        ({"concurrency": True}, "True"),
        ({"concurrency": "4"}, "'4'"),
        ({"global_limit": 0}, "0"),
        ({"global_limit": False}, "False"),
    ],
)
def test_invalid_queue_settings_rejected(options, quoted):
    with pytest.raises(InvalidOption, match=f"got {quoted}"):
        Queue(**options)


def test_global_limit_caps_pick(gendurable_app, make_app):
    app = make_app(queues={"limited": Queue(concurrency=10, global_limit=2)})
    app.insert_all([plain.new(n, queue="limited") for n in range(5)])
    limits = {"limited": app.global_limit("limited")}

    with app.pool.connection() as conn:
        first = app._store.pick(conn, "worker-a", {"limited": 10}, limits, 60)
        second = app._store.pick(conn, "worker-b", {"limited": 10}, limits, 60)

    assert len(first) == 2
    assert second == []


def test_worker_queues_parses_spec(make_app):
    app = make_app(queues={"queues_emails": Queue(concurrency=4)})

    assert app.worker_queues("default=10,queues_emails=4") == {"default": 10, "queues_emails": 4}
    assert app.worker_queues(" default = 3 , ") == {"default": 3}
    assert app.worker_queues("queues_emails") == {"queues_emails": 4}
    assert app.worker_queues("default") == {"default": 10}


@pytest.mark.parametrize(
    ("spec", "error", "fragment"),
    [
        ("default=ten", InvalidOption, "'ten'"),
        ("default=0", InvalidOption, "got 0"),
        ("default=-2", InvalidOption, "got -2"),
        ("defualt=2", UnknownQueue, "did you mean 'default'"),
        (",,", InvalidOption, "no queue named in ',,'"),
    ],
)
def test_worker_queues_rejects_bad_spec(make_app, spec, error, fragment):
    app = make_app()

    with pytest.raises(error, match=fragment):
        app.worker_queues(spec)


def test_worker_queues_default_serves_known(make_app):
    app = make_app(queues={"mail": Queue(concurrency=4)})

    served = app.worker_queues(None)

    assert served["default"] == 10
    assert served["mail"] == 4
    assert served["queues_emails"] == 10


def test_paused_queue_skipped(gendurable_app):
    waiting = email.delay(1)
    running = plain.delay(2)
    gendurable_app.pause_queue("queues_emails")

    assert gendurable_app.drain() == {"done": 1}
    assert gendurable_app.drain(queues=["queues_emails"]) == {}
    assert waiting.status() == "available"
    assert running.status() == "done"
    assert gendurable_app._store.paused_queues() == ["queues_emails"]


def test_resumed_queue_runs(gendurable_app):
    handle = email.delay(1)
    gendurable_app.pause_queue("queues_emails")
    gendurable_app.drain()

    gendurable_app.resume_queue("queues_emails")

    assert gendurable_app._store.paused_queues() == []
    assert gendurable_app.drain() == {"done": 1}
    assert handle.result(timeout=0) == 1
