"""app.drain(): counts by outcome, a subset of queues, and its timeout."""

from __future__ import annotations

import threading

import pytest

from gendurable import durable_job
from gendurable.errors import UnknownQueue

from .helpers import get_row

release = threading.Event()


@durable_job
def plain(n: int) -> int:
    return n


@durable_job(queue="drain_emails")
def email(n: int) -> int:
    return n


@durable_job(max_attempts=1)
def broken() -> None:
    raise RuntimeError("broken")


@durable_job(max_attempts=5)
def flaky() -> None:
    raise RuntimeError("flaky")


@durable_job
def waits_for_release() -> str:
    release.wait(10)
    return "released"


def test_drain_counts_by_outcome(gendurable_app):
    plain.delay(1)
    plain.delay(2)
    broken.delay()
    flaky.delay()

    assert gendurable_app.drain() == {"done": 2, "failed": 1, "retried": 1}


def test_drain_runs_named_queues_only(gendurable_app):
    default_handle = plain.delay(1)
    email_handle = email.delay(2)

    assert gendurable_app.drain(queues=["drain_emails"]) == {"done": 1}
    assert email_handle.status() == "done"
    assert default_handle.status() == "available"


def test_drain_unknown_queue_rejected(gendurable_app):
    with pytest.raises(UnknownQueue, match="'drain_emial'"):
        gendurable_app.drain(queues=["drain_emial"])


def test_drain_with_nothing_to_do(gendurable_app):
    assert gendurable_app.drain() == {}


def test_drain_timeout_bounds_running_step(gendurable_app, db):
    handle = waits_for_release.delay()
    try:
        with pytest.raises(TimeoutError, match=f"instance {handle.id}"):
            gendurable_app.drain(timeout=0.5)
    finally:
        release.set()

    row = get_row(db, handle.id)
    assert row["status"] == "available"
    assert row["lease_owner"] is None
