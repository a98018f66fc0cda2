"""@durable_job: bare and with options, its default name, option checks, direct calls."""

from __future__ import annotations

from datetime import timedelta

import pytest

from gendurable import App, DurableJob, durable_job
from gendurable.errors import InvalidOption

from .helpers import get_row, row_count


@durable_job
def add(a: int, b: int) -> int:
    return a + b


@durable_job(
    queue="decorator_queue", priority=3, max_attempts=4, timeout=timedelta(seconds=12),
    name="renamed.configured",
)
def configured(x: int) -> int:
    return x


class Holder:
    @staticmethod
    @durable_job
    def nested(x: int) -> int:
        return x


def test_bare_decorator_makes_job():
    assert isinstance(add, DurableJob)
    assert add.queue == "default"
    assert add.priority == 0
    assert add.max_attempts == 20
    assert add.timeout is None


def test_decorator_options_kept():
    assert configured.queue == "decorator_queue"
    assert configured.priority == 3
    assert configured.max_attempts == 4
    assert configured.timeout == 12.0
    assert configured.name == "renamed.configured"


def test_name_defaults_to_module_qualname():
    assert add.name == f"{__name__}.add"
    assert Holder.nested.name == f"{__name__}.Holder.nested"


def test_decorator_options_reach_row(gendurable_app, db):
    handle = configured.delay(1)

    row = get_row(db, handle.id)
    assert row["fsm"] == "renamed.configured"
    assert row["queue"] == "decorator_queue"
    assert row["priority"] == 3
    assert row["max_attempts"] == 4
    assert row["timeout"] == 12.0


def test_unknown_option_suggests_nearest():
    with pytest.raises(InvalidOption, match=r"'queu' \(did you mean 'queue'\?\)"):
        durable_job(queu="emails")


def test_app_decorator_checks_options(gendurable_app):
    with pytest.raises(InvalidOption, match=r"'max_attempt' \(did you mean 'max_attempts'\?\)"):
        gendurable_app.durable_job(max_attempt=3)(lambda: None)


@pytest.mark.parametrize(
    ("option", "value", "quoted"),
    [
        ("priority", 10, "10"),
        ("max_attempts", 0, "0"),
        ("timeout", 0, "0"),
        ("backoff", "fast", "'fast'"),
        ("queue", "", "''"),
        ("weight", 0, "0"),
        ("correlation_scope", ["finished"], "'finished'"),
    ],
)
def test_invalid_option_value_rejected(option, value, quoted):
    with pytest.raises(InvalidOption, match=f"got {quoted}|contains {quoted}"):
        durable_job(**{option: value})(lambda: None)


@pytest.mark.parametrize("value", [5, "10/m"])
def test_rate_limit_rejected_as_unsupported(value):
    with pytest.raises(InvalidOption, match=f"rate_limit={value!r} is not supported"):
        durable_job(rate_limit=value)(lambda: None)


def test_decorating_non_callable_rejected():
    with pytest.raises(InvalidOption, match="42"):
        durable_job(42)  # type: ignore[call-overload]


def test_direct_call_runs_function(gendurable_app, db):
    assert add(2, 3) == 5
    assert row_count(db) == 0


def test_app_decorator_binds_app(gendurable_app, make_app):
    @gendurable_app.durable_job
    def bound(x: int) -> int:
        return x

    other = make_app()

    assert bound.app is gendurable_app
    assert add.app is other
