"""Celery's task options on gendurable jobs: binding, retries and what cannot be honoured."""

import pytest

from gendurable.contrib.celery import shared_task
from gendurable.errors import InstanceFailed, InvalidOption

calls: list[tuple[int, int]] = []


@shared_task(bind=True, max_retries=2, default_retry_delay=0)
def bound(self, user_id: int) -> str:
    calls.append((self.request.id, self.request.retries))
    if self.request.retries < 1:
        self.retry(countdown=0)
    return f"user {user_id} after {self.request.retries} retries"


@shared_task(autoretry_for=(ConnectionError,), retry_backoff=True, retry_jitter=False,
             max_retries=1)
def flaky(kind: str) -> None:
    if kind == "connection":
        raise ConnectionError("smtp refused")
    raise ValueError("bad template")


def test_bound_task_retries_itself(gendurable_app):
    calls.clear()
    handle = bound.delay(7)

    gendurable_app.drain(with_scheduled=True)

    assert handle.result(timeout=0) == "user 7 after 1 retries"
    assert [retries for _, retries in calls] == [0, 1]
    assert calls[0][0] == handle.id


def test_autoretry_then_fails(gendurable_app):
    handle = flaky.delay("connection")

    assert gendurable_app.drain(with_scheduled=True) == {"retried": 1, "failed": 1}
    with pytest.raises(InstanceFailed, match="smtp refused"):
        handle.result(timeout=0)


def test_other_exception_fails_at_once(gendurable_app):
    handle = flaky.delay("template")

    assert gendurable_app.drain(with_scheduled=True) == {"failed": 1}
    with pytest.raises(InstanceFailed, match="ValueError: bad template"):
        handle.result(timeout=0)


def test_max_retries_sets_attempts(gendurable_app):
    assert flaky.max_attempts == 2
    assert bound.max_attempts == 3


@pytest.mark.parametrize("option", ["rate_limit", "time_limit", "base"])
def test_unhonoured_option_rejected(option):
    with pytest.raises(InvalidOption, match=f"{option}= cannot be honoured"):
        shared_task(**{option: "x"})(lambda: None)


def test_typo_option_suggests_name():
    with pytest.raises(InvalidOption, match="did you mean 'max_retries'"):
        shared_task(max_retry=3)(lambda: None)


def test_canvas_signature_rejected():
    with pytest.raises(InvalidOption, match="not provided"):
        flaky.s("connection")


def test_retries_keep_error_history(gendurable_app):
    calls.clear()
    handle = bound.delay(8)
    failing = flaky.delay("connection")

    gendurable_app.drain(with_scheduled=True)

    bound_errors = gendurable_app.inspect(handle.id)["errors"]
    assert len(bound_errors) == 1
    assert "retry requested" in bound_errors[0]["error"]
    flaky_errors = gendurable_app.inspect(failing.id)["errors"]
    assert [error["attempt"] for error in flaky_errors] == [1, 2]
    assert all("ConnectionError" in error["traceback"] for error in flaky_errors)
