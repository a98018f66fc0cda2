"""Running jobs: sync and async functions, the optional ctx, and typed arguments."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel

from gendurable import Context, durable_job
from gendurable.errors import InvalidArguments

from .helpers import get_row, row_count

contexts: list[Context] = []


@pytest.fixture(autouse=True)
def _forget_contexts():
    contexts.clear()


@durable_job
def sync_double(n: int) -> int:
    return n * 2


@durable_job
async def async_double(n: int) -> int:
    await asyncio.sleep(0)
    return n * 2


@durable_job(queue="context_queue", max_attempts=3, correlation_key="report-1")
def report_context(n: int, ctx: Context) -> int:
    contexts.append(ctx)
    if ctx.attempt == 1:
        raise RuntimeError("first attempt fails")
    return n


@durable_job
async def async_report_context(ctx: Context) -> int:
    contexts.append(ctx)
    return ctx.attempt


@durable_job
def only_arguments(*args: Any, **kwargs: Any) -> dict:
    return {"args": list(args), "kwargs": kwargs}


class Address(BaseModel):
    city: str
    postcode: str


@durable_job
def ship(when: datetime, to: Address, *, express: bool = False) -> dict:
    return {
        "when": type(when).__name__,
        "aware": when.tzinfo is not None,
        "to": type(to).__name__,
        "city": to.city,
        "express": express,
    }


@durable_job
def every_kind(first: int, /, second: int, *rest: int, flag: bool = False, **extra: str) -> list:
    return [first, second, list(rest), flag, extra]


def test_sync_job_runs(gendurable_app):
    handle = sync_double.delay(21)

    assert gendurable_app.drain() == {"done": 1}
    assert handle.result(timeout=0) == 42


def test_async_job_runs(gendurable_app):
    handle = async_double.delay(21)

    assert gendurable_app.drain() == {"done": 1}
    assert handle.result(timeout=0) == 42


def test_ctx_describes_attempt(gendurable_app, db):
    handle = report_context.delay(7)

    gendurable_app.drain(with_scheduled=True)

    row = get_row(db, handle.id)
    first, second = contexts
    assert second.id == handle.id
    assert first.attempt == 1
    assert second.attempt == 2
    assert second.max_attempts == 3
    assert second.queue == "context_queue"
    assert second.correlation_key == "report-1"
    assert second.inserted_at == row["inserted_at"]
    assert second.app is gendurable_app
    assert second.step == "perform"
    assert handle.result(timeout=0) == 7


def test_async_job_receives_ctx(gendurable_app):
    handle = async_report_context.delay()

    gendurable_app.drain()

    assert handle.result(timeout=0) == 1
    assert contexts[0].id == handle.id


def test_job_without_ctx_gets_only_args(gendurable_app):
    handle = only_arguments.delay(1, 2, colour="red")

    gendurable_app.drain()

    assert handle.result(timeout=0) == {"args": [1, 2], "kwargs": {"colour": "red"}}


def test_typed_args_arrive_typed(gendurable_app):
    when = datetime(2030, 5, 1, 9, 30, tzinfo=UTC)

    handle = ship.delay(when, Address(city="Lyon", postcode="69001"), express=True)
    gendurable_app.drain()

    assert handle.result(timeout=0) == {
        "when": "datetime", "aware": True, "to": "Address", "city": "Lyon", "express": True,
    }


def test_typed_args_stored_as_json(gendurable_app, db):
    when = datetime(2030, 5, 1, 9, 30, tzinfo=UTC)

    handle = ship.delay(when, {"city": "Lyon", "postcode": "69001"})

    assert get_row(db, handle.id)["state"] == {
        "args": {"when": "2030-05-01T09:30:00Z", "to": {"city": "Lyon", "postcode": "69001"}}
    }


def test_typed_args_validated_at_insert(gendurable_app, db):
    with pytest.raises(InvalidArguments, match="'next tuesday'"):
        ship.delay("next tuesday", {"city": "Lyon", "postcode": "69001"})
    with pytest.raises(InvalidArguments, match="postcode"):
        ship.delay(datetime(2030, 5, 1, tzinfo=UTC), {"city": "Lyon"})
    assert row_count(db) == 0


def test_every_parameter_kind_arrives(gendurable_app):
    handle = every_kind.delay(1, 2, 3, 4, flag=True, note="n")

    gendurable_app.drain()

    assert handle.result(timeout=0) == [1, 2, [3, 4], True, {"note": "n"}]


def test_omitted_defaults_apply(gendurable_app):
    handle = every_kind.delay(1, 2)

    gendurable_app.drain()

    assert handle.result(timeout=0) == [1, 2, [], False, {}]
