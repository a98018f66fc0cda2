"""Retries: backoff after an exception, the error history, outcomes returned on purpose, and
per-attempt timeouts."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest

from gendurable import Context, Done, Retry, Stop, durable_job
from gendurable.errors import InstanceFailed

from .helpers import get_row

backoff_calls: list[int] = []


@pytest.fixture(autouse=True)
def _forget_backoff_calls():
    backoff_calls.clear()


def hundred_seconds_per_attempt(attempt: int) -> float:
    backoff_calls.append(attempt)
    return 100.0 * attempt


@durable_job(max_attempts=3)
def always_fails(message: str) -> None:
    raise ValueError(message)


@durable_job(max_attempts=5, backoff=hundred_seconds_per_attempt)
def fails_with_custom_backoff() -> None:
    raise RuntimeError("try later")


@durable_job(max_attempts=3)
def retries_on_purpose(delay: float | None, ctx: Context) -> object:
    if ctx.attempt == 1:
        return Retry(delay=delay)
    return ctx.attempt


@durable_job(max_attempts=1)
def retries_on_last_attempt() -> object:
    return Retry(delay=1)


@durable_job(max_attempts=5)
def stops(reason: str) -> object:
    return Stop(reason)


@durable_job
def returns_done(value: int) -> object:
    return Done(value)


@durable_job(max_attempts=2, timeout=0.2, backoff=lambda attempt: 0)
def slow_sync() -> str:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        time.sleep(0.01)
    return "finished"


@durable_job(max_attempts=2, timeout=0.2, backoff=lambda attempt: 0)
async def slow_async() -> str:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    return "finished"


@durable_job(timeout=5)
def quick_with_timeout() -> str:
    return "in time"


def test_exception_schedules_retry(gendurable_app, db):
    handle = always_fails.delay("boom")

    assert gendurable_app.drain() == {"retried": 1}

    row = get_row(db, handle.id)
    assert row["status"] == "available"
    assert row["attempt"] == 1
    assert row["run_at"] - row["attempted_at"] >= timedelta(seconds=0.5)
    assert [error["attempt"] for error in row["errors"]] == [1]
    assert row["errors"][0]["error"] == "ValueError: boom"
    assert row["errors"][0]["step"] == "perform"
    assert "raise ValueError(message)" in row["errors"][0]["traceback"]


def test_retries_end_failed_with_history(gendurable_app, db):
    handle = always_fails.delay("boom")

    assert gendurable_app.drain(with_scheduled=True) == {"retried": 2, "failed": 1}

    row = get_row(db, handle.id)
    assert row["status"] == "failed"
    assert row["finished_at"] is not None
    assert [error["attempt"] for error in row["errors"]] == [1, 2, 3]
    assert all(error["error"] == "ValueError: boom" for error in row["errors"])
    with pytest.raises(InstanceFailed) as caught:
        handle.result(timeout=0)
    assert caught.value.last_error["attempt"] == 3


def test_custom_backoff_used(gendurable_app, db):
    handle = fails_with_custom_backoff.delay()

    gendurable_app.drain()

    row = get_row(db, handle.id)
    assert backoff_calls == [1]
    assert row["run_at"] - row["attempted_at"] >= timedelta(seconds=100)
    assert row["run_at"] - row["attempted_at"] < timedelta(seconds=200)


def test_retry_outcome_uses_its_delay(gendurable_app, db):
    handle = retries_on_purpose.delay(3600)

    assert gendurable_app.drain() == {"retried": 1}

    row = get_row(db, handle.id)
    assert row["run_at"] - row["attempted_at"] >= timedelta(hours=1)
    assert row["errors"] == []
    assert gendurable_app.drain(with_scheduled=True) == {"done": 1}
    assert handle.result(timeout=0) == 2


def test_retry_outcome_without_delay_backs_off(gendurable_app, db):
    handle = retries_on_purpose.delay(None)

    gendurable_app.drain()

    row = get_row(db, handle.id)
    assert row["run_at"] - row["attempted_at"] >= timedelta(seconds=0.5)
    assert row["run_at"] - row["attempted_at"] < timedelta(minutes=1)


def test_retry_on_last_attempt_fails(gendurable_app):
    handle = retries_on_last_attempt.delay()

    assert gendurable_app.drain() == {"failed": 1}
    with pytest.raises(InstanceFailed, match="last of 1 attempts"):
        handle.result(timeout=0)


def test_stop_outcome_fails_at_once(gendurable_app, db):
    handle = stops.delay("the order was withdrawn")

    assert gendurable_app.drain() == {"failed": 1}

    row = get_row(db, handle.id)
    assert row["attempt"] == 1
    assert row["errors"][-1]["error"] == "stopped: the order was withdrawn"
    with pytest.raises(InstanceFailed, match="the order was withdrawn"):
        handle.result(timeout=0)


def test_done_outcome_sets_result(gendurable_app):
    handle = returns_done.delay(9)

    assert gendurable_app.drain() == {"done": 1}
    assert handle.result(timeout=0) == 9


def test_sync_timeout_fails_attempt(gendurable_app, db):
    handle = slow_sync.delay()

    assert gendurable_app.drain() == {"retried": 1, "failed": 1}

    errors = get_row(db, handle.id)["errors"]
    assert [error["attempt"] for error in errors] == [1, 2]
    assert all("timeout of 0.2 s" in error["error"] for error in errors)


def test_async_timeout_fails_attempt(gendurable_app, db):
    handle = slow_async.delay()

    assert gendurable_app.drain() == {"retried": 1, "failed": 1}

    errors = get_row(db, handle.id)["errors"]
    assert [error["attempt"] for error in errors] == [1, 2]
    assert all("timeout of 0.2 s" in error["error"] for error in errors)


def test_step_within_timeout_done(gendurable_app):
    handle = quick_with_timeout.delay()

    assert gendurable_app.drain() == {"done": 1}
    assert handle.result(timeout=0) == "in time"


UNSTORABLE = {"nul": "a\x00b", "nan": float("nan"), "infinity": [float("inf")]}


@durable_job(max_attempts=2, backoff=lambda attempt: 0)
def returns_unstorable(kind: str) -> object:
    return UNSTORABLE[kind]


@durable_job(max_attempts=1)
def raises_with_nul() -> None:
    raise ValueError("bad\x00byte")


@durable_job(max_attempts=2, backoff=lambda attempt: float("inf"))
def fails_with_infinite_backoff() -> None:
    raise RuntimeError("try later")


@durable_job(max_attempts=2, backoff=lambda attempt: 0)
def retries_after_infinity() -> object:
    return Retry(delay=float("inf"))


@pytest.mark.parametrize("kind", sorted(UNSTORABLE))
def test_unstorable_result_fails_attempt(gendurable_app, db, kind):
    handle = returns_unstorable.delay(kind)

    assert gendurable_app.drain() == {"failed": 1}

    error = get_row(db, handle.id)["errors"][-1]["error"]
    assert error.startswith("gendurable.errors.InvalidOutcome: the result of")


def test_error_with_nul_recorded(gendurable_app, db):
    handle = raises_with_nul.delay()

    assert gendurable_app.drain() == {"failed": 1}
    assert get_row(db, handle.id)["errors"][-1]["error"] == "ValueError: bad\\x00byte"


def test_infinite_backoff_uses_default(gendurable_app, db):
    handle = fails_with_infinite_backoff.delay()

    assert gendurable_app.drain() == {"retried": 1}

    row = get_row(db, handle.id)
    assert row["run_at"] - row["attempted_at"] >= timedelta(seconds=0.5)
    assert row["run_at"] - row["attempted_at"] < timedelta(minutes=1)


def test_infinite_retry_delay_fails_attempt(gendurable_app, db):
    handle = retries_after_infinity.delay()

    assert gendurable_app.drain() == {"failed": 1}
    first_error = get_row(db, handle.id)["errors"][0]["error"]
    assert first_error.startswith("gendurable.errors.InvalidOutcome: Retry delay")


UNSTORABLE_STATES = {"object": {"x": object()}, "nul": {"x": "a\x00b"}, "nan": {"x": float("nan")}}


@durable_job(max_attempts=2, backoff=lambda attempt: 0)
def returns_unstorable_state(kind: str) -> object:
    return Done(1, state=UNSTORABLE_STATES[kind])


@pytest.mark.parametrize("kind", sorted(UNSTORABLE_STATES))
def test_job_outcome_with_state_fails(gendurable_app, db, kind):
    # A job's state is its arguments: an outcome that would replace them is rejected.
    handle = returns_unstorable_state.delay(kind)

    assert gendurable_app.drain() == {"failed": 1}

    error = get_row(db, handle.id)["errors"][-1]["error"]
    assert "with a state" in error
    assert get_row(db, handle.id)["state"] == {"args": {"kind": kind}}
