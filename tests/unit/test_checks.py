"""The pure checks behind insert options and stored values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gendurable._insert import (
    DEFAULT_SCOPE,
    MAX_SECONDS,
    check_scope,
    check_seconds,
    expiry,
    key_value,
    schedule,
)
from gendurable._json import unstorable, without_nul
from gendurable.errors import InvalidOption, InvalidOutcome, closest
from gendurable.outcomes import delay_seconds


def no_arguments():
    return (), {}


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(None, None), (0, 0.0), (2.5, 2.5), (timedelta(minutes=1), 60.0), (MAX_SECONDS, MAX_SECONDS)],
)
def test_seconds_accepted(value, seconds):
    assert check_seconds("countdown", value) == seconds


@pytest.mark.parametrize(
    "value", [-1, float("nan"), float("inf"), float("-inf"), MAX_SECONDS * 2, True, "5", timedelta(days=-1)]
)
def test_seconds_rejected(value):
    with pytest.raises(InvalidOption, match="countdown"):
        check_seconds("countdown", value)


def test_positive_seconds_reject_zero():
    with pytest.raises(InvalidOption, match="greater than 0, got 0"):
        check_seconds("timeout", 0, positive=True)


def test_schedule_splits_countdown_and_eta():
    eta = datetime(2030, 1, 1, tzinfo=UTC)

    assert schedule(None, None) == (0.0, None)
    assert schedule(30, None) == (30.0, None)
    assert schedule(None, eta) == (0.0, eta)


def test_expiry_splits_delay_and_time():
    at = datetime(2030, 1, 1, tzinfo=UTC)

    assert expiry(None) == (None, None)
    assert expiry(timedelta(hours=1)) == (3600.0, None)
    assert expiry(at) == (None, at)


def test_naive_expiry_rejected():
    with pytest.raises(InvalidOption, match="expires must be timezone-aware"):
        expiry(datetime(2030, 1, 1))


def test_scope_defaults_to_live():
    assert check_scope(None) == DEFAULT_SCOPE
    assert check_scope(["done", "available"]) == ("done", "available")


def test_scope_string_rejected():
    with pytest.raises(InvalidOption, match="list of statuses"):
        check_scope("done")


def test_key_from_callable():
    assert key_value("correlation_key", lambda: "k", no_arguments) == "k"
    assert key_value("correlation_key", lambda: None, no_arguments) is None


def test_key_callable_result_checked():
    with pytest.raises(InvalidOption, match="got 5"):
        key_value("correlation_key", lambda: 5, no_arguments)


@pytest.mark.parametrize("delay", [float("nan"), float("inf"), MAX_SECONDS + 1, -1, "1"])
def test_outcome_delay_rejected(delay):
    with pytest.raises(InvalidOutcome, match="Retry delay"):
        delay_seconds(delay, "Retry delay")


def test_storable_values_pass():
    assert unstorable({"a": [1, 2.5, "text", None, True], "b": {"c": ()}}) is None


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ("a\x00", "value"),
        ([1, float("nan")], "value[1]"),
        ({"k": {"deep": float("inf")}}, "value['k']['deep']"),
        ({"k\x00": 1}, "value"),
        ({1, 2, float("-inf")}, "value["),
    ],
)
def test_unstorable_values_found(value, path):
    problem = unstorable(value)

    assert problem is not None
    assert problem.startswith(path)


def test_nul_written_as_escape():
    assert without_nul("a\x00b") == "a\\x00b"


def test_closest_suggests_match():
    assert closest("queu", ["queue", "priority"]) == " (did you mean 'queue'?)"
    assert closest("zzz", ["queue", "priority"]) == ""
