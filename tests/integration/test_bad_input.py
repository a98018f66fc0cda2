"""Bad input at insert raises a gendurable error naming the value and writes nothing."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from gendurable import durable_job
from gendurable.errors import InvalidArguments, InvalidOption, UnknownQueue

from .helpers import row_count


@durable_job
def add(a: int, b: int) -> int:
    return a + b


@durable_job
def echo(value: Any = None) -> Any:
    return value


@durable_job
def measure(value: float) -> float:
    return value


@durable_job(queue="bad_input_emails")
def send(to: str) -> str:
    return to


CASES = [
    pytest.param(lambda: add.delay(1), InvalidArguments, "missing a required argument: 'b'",
                 id="missing-argument"),
    pytest.param(lambda: add.delay(1, 2, 3), InvalidArguments, "too many positional arguments",
                 id="extra-positional"),
    pytest.param(lambda: add.delay(1, 2, c=3), InvalidArguments, "has no parameter 'c'",
                 id="extra-keyword"),
    pytest.param(lambda: add.delay("one", 2), InvalidArguments, "got 'one'", id="wrong-type"),
    pytest.param(lambda: add.apply_async(args="12"), InvalidArguments, "got '12'",
                 id="args-string"),
    pytest.param(lambda: add.apply_async(args=5), InvalidArguments, "got 5", id="args-integer"),
    pytest.param(lambda: add.apply_async(kwargs=[("a", 1), ("b", 2)]), InvalidArguments,
                 r"got \[\('a', 1\)", id="kwargs-pairs"),
    pytest.param(lambda: echo.delay(object()), InvalidArguments, "not JSON-serialisable",
                 id="not-json"),
    pytest.param(lambda: echo.delay("a\x00b"), InvalidArguments, r"'a\\x00b'", id="nul-character"),
    pytest.param(lambda: echo.delay({"key\x00": 1}), InvalidArguments, r"'key\\x00'",
                 id="nul-in-key"),
    pytest.param(lambda: echo.delay(float("nan")), InvalidArguments, "nan", id="nan-any"),
    pytest.param(lambda: measure.delay(float("inf")), InvalidArguments, "inf", id="infinity-float"),
    pytest.param(lambda: echo.delay([1, float("-inf")]), InvalidArguments, "inf",
                 id="infinity-nested"),
    pytest.param(lambda: add.apply_async((1, 2), priority=10), InvalidOption, "got 10",
                 id="priority-high"),
    pytest.param(lambda: add.apply_async((1, 2), priority=-1), InvalidOption, "got -1",
                 id="priority-negative"),
    pytest.param(lambda: add.apply_async((1, 2), priority="1"), InvalidOption, "got '1'",
                 id="priority-string"),
    pytest.param(lambda: add.apply_async((1, 2), max_attempts=0), InvalidOption, "got 0",
                 id="max-attempts-zero"),
    pytest.param(lambda: add.apply_async((1, 2), max_attempts=2**40), InvalidOption,
                 "got 1099511627776", id="max-attempts-huge"),
    pytest.param(lambda: add.apply_async((1, 2), countdown=-1), InvalidOption, "got -1",
                 id="countdown-negative"),
    pytest.param(lambda: add.apply_async((1, 2), countdown=float("inf")), InvalidOption,
                 "got inf", id="countdown-infinite"),
    pytest.param(lambda: add.apply_async((1, 2), countdown=float("nan")), InvalidOption,
                 "got nan", id="countdown-nan"),
    pytest.param(lambda: add.apply_async((1, 2), countdown=1e13), InvalidOption,
                 "got 10000000000000.0", id="countdown-huge"),
    pytest.param(lambda: add.apply_async((1, 2), countdown="soon"), InvalidOption, "got 'soon'",
                 id="countdown-string"),
    pytest.param(lambda: add.apply_async((1, 2), eta=datetime(2030, 1, 1)), InvalidOption,
                 "naive datetime", id="eta-naive"),
    pytest.param(lambda: add.apply_async((1, 2), timeout=0), InvalidOption, "got 0",
                 id="timeout-zero"),
    pytest.param(lambda: add.apply_async((1, 2), expires=-5), InvalidOption, "got -5",
                 id="expires-negative"),
    pytest.param(lambda: add.apply_async((1, 2), weight=0), InvalidOption, "got 0",
                 id="weight-zero"),
    pytest.param(lambda: add.apply_async((1, 2), weight=-1), InvalidOption, "got -1",
                 id="weight-negative"),
    pytest.param(lambda: add.apply_async((1, 2), rate_limit=5), InvalidOption, "rate_limit=5",
                 id="rate-limit-not-string"),
    pytest.param(lambda: add.apply_async((1, 2), rate_limit="10/m"), InvalidOption,
                 "not supported", id="rate-limit-unsupported"),
    pytest.param(lambda: add.apply_async((1, 2), weight=2), InvalidOption, "not supported",
                 id="weight-unsupported"),
    pytest.param(lambda: add.apply_async((1, 2), correlation_key=""), InvalidOption, "got ''",
                 id="correlation-key-empty"),
    pytest.param(lambda: add.apply_async((1, 2), correlation_key="k\x00"), InvalidOption,
                 r"'k\\x00'", id="correlation-key-nul"),
    pytest.param(lambda: add.apply_async((1, 2), concurrency_key="k\x00"), InvalidOption,
                 r"'k\\x00'", id="concurrency-key-nul"),
    pytest.param(lambda: add.apply_async((1, 2), correlation_scope=["finished"]), InvalidOption,
                 "'finished'", id="scope-not-status"),
    pytest.param(lambda: add.apply_async((1, 2), queue=""), InvalidOption, "got ''",
                 id="queue-empty"),
    pytest.param(lambda: add.apply_async((1, 2), queue="q\x00"), InvalidOption, r"'q\\x00'",
                 id="queue-nul"),
    pytest.param(lambda: add.apply_async((1, 2), priorty=1), InvalidOption,
                 "did you mean 'priority'", id="option-misspelt"),
    pytest.param(lambda: send.apply_async(("a",), queue="bad_input_emials"), UnknownQueue,
                 "did you mean 'bad_input_emails'", id="queue-misspelt"),
]


@pytest.mark.parametrize(("call", "error", "fragment"), CASES)
def test_bad_insert_writes_nothing(gendurable_app, db, call, error, fragment):
    with pytest.raises(error, match=fragment):
        call()
    assert row_count(db) == 0


def test_bad_new_raises_before_insert(gendurable_app, db):
    with pytest.raises(InvalidArguments, match="got 'one'"):
        gendurable_app.insert_all([add.new(1, 2), add.new("one", 2)])
    assert row_count(db) == 0


def test_bulk_unknown_queue_writes_nothing(gendurable_app, db):
    with pytest.raises(UnknownQueue, match="'nowhere'"):
        gendurable_app.insert_all([add.new(1, 2), add.new(3, 4, queue="nowhere")])
    assert row_count(db) == 0
