"""Handle: id, inserted, status(), result() in every terminal status, cancel()."""

from __future__ import annotations

import pytest

from gendurable import Handle, Status, durable_job
from gendurable.errors import InstanceCancelled, InstanceFailed, NoSuchInstance

from .helpers import get_row

ran: list[int] = []


@durable_job
def square(n: int) -> int:
    ran.append(n)
    return n * n


@durable_job(max_attempts=1)
def explode(message: str) -> None:
    raise ValueError(message)


@pytest.fixture(autouse=True)
def _forget_runs():
    ran.clear()


def test_handle_has_id_and_inserted(gendurable_app, db):
    handle = square.delay(3)

    assert isinstance(handle, Handle)
    assert handle.inserted
    assert get_row(db, handle.id)["fsm"] == square.name


def test_status_is_status_enum(gendurable_app):
    handle = square.delay(3)

    status = handle.status()

    assert isinstance(status, Status)
    assert status is Status.AVAILABLE
    assert status == "available"


def test_status_done_after_drain(gendurable_app):
    handle = square.delay(3)

    gendurable_app.drain()

    assert handle.status() == "done"


def test_result_returns_value(gendurable_app):
    handle = square.delay(4)
    gendurable_app.drain()

    assert handle.result(timeout=5) == 16


def test_result_raises_instance_failed(gendurable_app):
    handle = explode.delay("the disk is full")
    gendurable_app.drain()

    with pytest.raises(InstanceFailed, match="the disk is full") as caught:
        handle.result(timeout=5)
    assert caught.value.instance_id == handle.id
    assert caught.value.last_error["error"] == "ValueError: the disk is full"
    assert caught.value.last_error["attempt"] == 1


def test_result_raises_instance_cancelled(gendurable_app):
    handle = square.delay(4)
    handle.cancel()

    with pytest.raises(InstanceCancelled, match=str(handle.id)):
        handle.result(timeout=5)


def test_result_timeout_raises(gendurable_app):
    handle = square.delay(4)

    with pytest.raises(TimeoutError, match="still available"):
        handle.result(timeout=0)


def test_cancel_available_ends_cancelled(gendurable_app, db):
    handle = square.delay(5)

    assert handle.cancel() is Status.CANCELLED
    assert handle.status() == "cancelled"
    assert get_row(db, handle.id)["finished_at"] is not None
    assert gendurable_app.drain() == {}
    assert ran == []


def test_cancel_done_keeps_done(gendurable_app):
    handle = square.delay(5)
    gendurable_app.drain()

    assert handle.cancel() is Status.DONE
    assert handle.result(timeout=0) == 25


def test_missing_instance_raises(gendurable_app):
    handle = gendurable_app.handle(12345)

    with pytest.raises(NoSuchInstance, match="12345"):
        handle.status()
    with pytest.raises(NoSuchInstance, match="12345"):
        gendurable_app.cancel(12345)


def test_handles_compare_by_id(gendurable_app):
    handle = square.delay(5)

    assert gendurable_app.handle(handle.id) == handle
    assert len({handle, gendurable_app.handle(handle.id)}) == 1
