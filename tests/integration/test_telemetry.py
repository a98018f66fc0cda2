"""Telemetry events and the default log handler built on them."""

from __future__ import annotations

import logging

import pytest

from gendurable import durable_job, telemetry


@durable_job(queue="telemetry_queue")
def succeed(n: int) -> int:
    return n


@durable_job(max_attempts=2, backoff=lambda attempt: 3600)
def fail(message: str) -> None:
    raise ValueError(message)


@pytest.fixture
def inserts():
    recorded = []
    telemetry.attach("tests.inserts", ["insert"], lambda *event: recorded.append(event))
    yield recorded
    telemetry.detach("tests.inserts")


def named(events, name):
    return [(measurements, metadata) for event, measurements, metadata in events if event == name]


def test_attached_handler_receives_event(gendurable_app, inserts):
    succeed.delay(1)

    assert inserts == [
        ("insert", {"count": 1}, {"fsm": succeed.name, "queue": "telemetry_queue", "count": 1})
    ]


def test_detached_handler_stops(gendurable_app, inserts):
    succeed.delay(1)

    assert telemetry.detach("tests.inserts")
    succeed.delay(2)

    assert len(inserts) == 1
    assert not telemetry.detach("tests.inserts")


def test_handler_filters_events(gendurable_app, inserts):
    succeed.delay(1)
    gendurable_app.drain()

    assert [event for event, _, _ in inserts] == ["insert"]


def test_failing_handler_stays_attached(gendurable_app, caplog):
    calls = []

    def broken(event, measurements, metadata):
        calls.append(event)
        raise RuntimeError("handler bug")

    telemetry.attach("tests.broken", ["insert"], broken)
    try:
        first = succeed.delay(1)
        second = succeed.delay(2)
    finally:
        telemetry.detach("tests.broken")

    assert first.inserted
    assert second.inserted
    assert calls == ["insert", "insert"]
    assert "telemetry handler failed on event insert" in caplog.text


def test_bulk_insert_event_counts(gendurable_app, events):
    gendurable_app.insert_all([succeed.new(n) for n in range(3)])

    assert named(events, "insert") == [
        ({"count": 3}, {"fsm": succeed.name, "queue": "telemetry_queue", "count": 3})
    ]


def test_step_events_carry_metadata(gendurable_app, events):
    handle = succeed.delay(1)

    gendurable_app.drain()

    [(_, start)] = named(events, "step.start")
    [(stop_measurements, stop)] = named(events, "step.stop")
    expected = {
        "fsm": succeed.name, "step": "perform", "instance_id": handle.id, "attempt": 1,
        "max_attempts": 20, "queue": "telemetry_queue",
    }
    assert {key: start[key] for key in expected} == expected
    assert {key: stop[key] for key in expected} == expected
    assert stop["outcome"] == "Done"
    assert stop_measurements["duration_ms"] >= 0


def test_step_exception_event(gendurable_app, events):
    handle = fail.delay("no luck")

    gendurable_app.drain(with_scheduled=True)

    exceptions = named(events, "step.exception")
    assert [metadata["attempt"] for _, metadata in exceptions] == [1, 2]
    assert [metadata["final"] for _, metadata in exceptions] == [False, True]
    first = exceptions[0][1]
    assert first["instance_id"] == handle.id
    assert first["error"] == "ValueError: no luck"
    assert isinstance(first["exception"], ValueError)
    assert first["retry_in"] == 3600
    assert exceptions[0][0]["duration_ms"] >= 0


def test_log_records_carry_fields(gendurable_app, caplog):
    caplog.set_level(logging.DEBUG, logger="gendurable")
    handle = succeed.delay(1)

    gendurable_app.drain()

    [started] = [record for record in caplog.records if getattr(record, "event", None) == "step.start"]
    assert started.levelno == logging.DEBUG
    assert started.fsm == succeed.name
    assert started.step == "perform"
    assert started.instance_id == handle.id
    assert started.attempt == 1
    assert started.queue == "telemetry_queue"
    [stopped] = [record for record in caplog.records if getattr(record, "event", None) == "step.stop"]
    assert stopped.outcome == "Done"
    assert stopped.duration_ms >= 0


def test_retried_failure_logs_warning(gendurable_app, caplog):
    handle = fail.delay("no luck")

    gendurable_app.drain()

    [record] = [record for record in caplog.records if getattr(record, "event", None) == "step.exception"]
    assert record.levelno == logging.WARNING
    assert record.exc_info is None
    assert record.instance_id == handle.id
    assert record.attempt == 1
    assert "no luck" in record.getMessage()


def test_final_failure_logs_error(gendurable_app, caplog):
    handle = fail.delay("no luck")

    gendurable_app.drain(with_scheduled=True)

    records = [record for record in caplog.records if getattr(record, "event", None) == "step.exception"]
    assert [record.levelno for record in records] == [logging.WARNING, logging.ERROR]
    final = records[-1]
    assert final.instance_id == handle.id
    assert final.attempt == 2
    assert final.exc_info is not None
    assert final.exc_info[0] is ValueError


def test_mixed_bulk_insert_events(gendurable_app, events):
    gendurable_app.insert_all([succeed.new(1), fail.new("x"), succeed.new(2)])

    assert named(events, "insert") == [
        ({"count": 2}, {"fsm": succeed.name, "queue": "telemetry_queue", "count": 2}),
        ({"count": 1}, {"fsm": fail.name, "queue": "default", "count": 1}),
    ]
