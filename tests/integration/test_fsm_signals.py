"""Signals: delivery by correlation key, Await on a set of names, the inbox a step sees,
consumption by id, and what clears the inbox."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest
from pydantic import BaseModel

from gendurable import FSM, Await, Context, Done, Next, Signal, Stop, step, telemetry
from gendurable._beat.reaper import reap_once
from gendurable.errors import InvalidOption, NoSuchInstance
from gendurable.testing import truncate

from .helpers import get_row

# The context of every step that ran, in order.
contexts: list[Context] = []


@pytest.fixture(autouse=True)
def _forget_contexts():
    contexts.clear()


def signal_rows(db, instance_id: int) -> list[dict[str, Any]]:
    return db.execute(
        "SELECT id, name, payload FROM gen_durable_signals WHERE instance_id = %s ORDER BY id",
        (instance_id,),
    ).fetchall()


def inbox_names(db, instance_id: int) -> list[str]:
    return [entry["name"] for entry in get_row(db, instance_id)["inbox"]]


def names(signals: list[Signal]) -> list[str]:
    return [signal.name for signal in signals]


class Shipment(FSM):
    """Waits for "shipped" or "cancelled", then ends as the state's ``then`` names."""

    backoff = staticmethod(lambda attempt: 0.0)

    class State(BaseModel):
        order: int
        then: str = "done"

    @step(initial=True)
    def wait(self, state: State, ctx):
        return Await({"shipped", "cancelled"}, "after", timeout=timedelta(hours=1))

    @step
    def after(self, state: State, ctx):
        contexts.append(ctx)
        if state.then == "done":
            return Done(names(ctx.awaited))
        if state.then == "stop":
            return Stop("cancelled by the customer")
        if state.then == "raise":
            raise RuntimeError("the warehouse is closed")
        if state.then == "next":
            return Next("again")
        raise AssertionError(state.then)

    @step
    def again(self, state: State, ctx):
        contexts.append(ctx)
        return Await({"shipped"}, "after")


def start_shipment(key: str = "order-1", then: str = "done", **options: Any):
    return Shipment.start(Shipment.State(order=1, then=then), correlation_key=key, **options)


def send(app, name: str, payload: Any = None, key: str = "order-1", **options: Any) -> bool:
    return app.signal(Shipment, key, name, payload, **options)


# Delivery.


def test_signal_reaches_live_instance(gendurable_app, db):
    handle = start_shipment()

    assert send(gendurable_app, "note", {"text": "fragile"}) is True

    assert signal_rows(db, handle.id) == [
        {"id": signal_rows(db, handle.id)[0]["id"], "name": "note", "payload": {"text": "fragile"}}
    ]
    assert inbox_names(db, handle.id) == ["note"]


def test_signal_without_instance_writes_nothing(gendurable_app, db):
    start_shipment("order-1")

    assert send(gendurable_app, "shipped", key="order-2") is False
    assert gendurable_app.signal(f"{Shipment._definition.name}X", "order-1", "shipped") is False

    assert db.execute("SELECT count(*) AS n FROM gen_durable_signals").fetchone()["n"] == 0


def test_strict_signal_raises_no_such_instance(gendurable_app, db):
    with pytest.raises(NoSuchInstance, match="correlation key 'order-9'"):
        send(gendurable_app, "shipped", key="order-9", strict=True)

    assert db.execute("SELECT count(*) AS n FROM gen_durable_signals").fetchone()["n"] == 0


def test_signal_by_fsm_name(gendurable_app, db):
    handle = start_shipment()

    assert gendurable_app.signal(Shipment._definition.name, "order-1", "note") is True
    assert inbox_names(db, handle.id) == ["note"]


def test_finished_instance_gets_no_signal(gendurable_app, db):
    start_shipment()
    gendurable_app.drain()
    send(gendurable_app, "shipped")
    assert gendurable_app.drain() == {"done": 1}

    assert send(gendurable_app, "shipped") is False


def test_signal_joins_caller_transaction(gendurable_app, gendurable_database_url, db):
    handle = start_shipment()
    gendurable_app.drain()

    with psycopg.connect(gendurable_database_url) as conn:
        assert send(gendurable_app, "shipped", connection=conn) is True
        conn.rollback()
    assert get_row(db, handle.id)["status"] == "awaiting"
    assert signal_rows(db, handle.id) == []

    with psycopg.connect(gendurable_database_url) as conn:
        send(gendurable_app, "shipped", connection=conn)
        conn.commit()
    assert get_row(db, handle.id)["status"] == "available"


@pytest.mark.parametrize(
    "payload",
    [object(), float("nan"), {"text": "a\x00b"}],
    ids=["object", "nan", "nul"],
)
def test_unstorable_payload_rejected(gendurable_app, db, payload):
    start_shipment()

    with pytest.raises(InvalidOption, match="payload"):
        send(gendurable_app, "note", payload)

    assert db.execute("SELECT count(*) AS n FROM gen_durable_signals").fetchone()["n"] == 0


@pytest.mark.parametrize(
    ("fsm", "key", "name"),
    [(Shipment, "", "shipped"), (Shipment, "order-1", ""), (None, "order-1", "shipped")],
    ids=["empty-key", "empty-name", "no-fsm"],
)
def test_invalid_signal_arguments_rejected(gendurable_app, fsm, key, name):
    with pytest.raises(InvalidOption):
        gendurable_app.signal(fsm, key, name)


def test_signal_event(gendurable_app, db):
    events: list[tuple[str, dict[str, float], dict[str, Any]]] = []

    def record(event: str, measurements: Mapping[str, float], metadata: Mapping[str, Any]) -> None:
        events.append((event, dict(measurements), dict(metadata)))

    handle = start_shipment()
    telemetry.attach("test_fsm_signals", ["signal"], record)
    try:
        send(gendurable_app, "note")
        gendurable_app.drain()
        send(gendurable_app, "shipped")
        send(gendurable_app, "shipped", key="order-2")
    finally:
        telemetry.detach("test_fsm_signals")

    metadata = {"fsm": Shipment._definition.name, "correlation_key": "order-1"}
    assert events == [
        ("signal", {"count": 1},
         metadata | {"name": "note", "instance_id": handle.id, "woken": False}),
        ("signal", {"count": 1},
         metadata | {"name": "shipped", "instance_id": handle.id, "woken": True}),
        ("signal", {"count": 0},
         metadata | {"correlation_key": "order-2", "name": "shipped", "instance_id": None,
                     "woken": False}),
    ]


# Await and what the woken step sees.


def test_await_wakes_on_any_name(gendurable_app, db):
    handle = start_shipment()
    assert gendurable_app.drain() == {"awaiting": 1}

    send(gendurable_app, "cancelled")

    assert get_row(db, handle.id)["status"] == "available"
    assert gendurable_app.drain() == {"done": 1}
    assert handle.result(timeout=0) == ["cancelled"]


def test_unawaited_signal_does_not_wake(gendurable_app, db):
    handle = start_shipment()
    gendurable_app.drain()

    send(gendurable_app, "note")

    assert get_row(db, handle.id)["status"] == "awaiting"
    assert gendurable_app.drain(with_scheduled=True) == {}


def test_signal_before_await_waits_in_inbox(gendurable_app, db):
    handle = start_shipment()

    send(gendurable_app, "shipped", {"carrier": "UPS"})
    assert gendurable_app.drain() == {"next": 1, "done": 1}, "the Await is satisfied at once"

    assert handle.result(timeout=0) == ["shipped"]
    assert [s.payload for s in contexts[0].awaited] == [{"carrier": "UPS"}]


def test_woken_step_sees_awaited_and_all(gendurable_app, db):
    handle = start_shipment()
    gendurable_app.drain()
    send(gendurable_app, "note", 1)
    send(gendurable_app, "shipped", {"carrier": "UPS"})
    send(gendurable_app, "note", 2)
    send(gendurable_app, "cancelled", None)
    ids = [row["id"] for row in signal_rows(db, handle.id)]

    assert gendurable_app.drain() == {"done": 1}

    [ctx] = contexts
    assert names(ctx.all) == ["note", "shipped", "note", "cancelled"]
    assert [s.id for s in ctx.all] == ids
    assert [s.payload for s in ctx.all] == [1, {"carrier": "UPS"}, 2, None]
    assert names(ctx.awaited) == ["shipped", "cancelled"]
    assert [s.id for s in ctx.awaited] == [ids[1], ids[3]]
    for signal in ctx.all:
        assert isinstance(signal, Signal)
        assert isinstance(signal.received_at, datetime)
        assert signal.received_at.tzinfo is not None
    assert [s.received_at for s in ctx.all] == sorted(s.received_at for s in ctx.all)


def test_progress_consumes_only_awaited(gendurable_app, db):
    handle = start_shipment(then="next")
    gendurable_app.drain()
    send(gendurable_app, "note", 1)
    send(gendurable_app, "shipped", 2)
    send(gendurable_app, "cancelled", 3)

    assert gendurable_app.drain() == {"next": 1, "awaiting": 1}

    assert [(row["name"], row["payload"]) for row in signal_rows(db, handle.id)] == [("note", 1)]
    assert inbox_names(db, handle.id) == ["note"]
    assert names(contexts[1].all) == ["note"], "the next step sees what was not consumed"
    assert contexts[1].awaited == []
    assert get_row(db, handle.id)["status"] == "awaiting"


def test_await_timeout_runs_step_without_signals(gendurable_app, db):
    handle = start_shipment()
    gendurable_app.drain()
    send(gendurable_app, "note")
    assert reap_once(gendurable_app._store) == 0
    assert get_row(db, handle.id)["status"] == "awaiting", "the timeout has not passed yet"

    db.execute(
        "UPDATE gen_durable SET await_until = now() - interval '1 second' WHERE id = %s",
        (handle.id,),
    )
    reap_once(gendurable_app._store)

    assert get_row(db, handle.id)["status"] == "available"
    assert gendurable_app.drain() == {"done": 1}
    [ctx] = contexts
    assert ctx.awaited == []
    assert names(ctx.all) == ["note"]
    assert handle.result(timeout=0) == []


def test_await_without_timeout_not_expired(gendurable_app, db):
    handle = start_shipment(then="next")
    gendurable_app.drain()
    send(gendurable_app, "shipped")
    gendurable_app.drain()

    reap_once(gendurable_app._store)

    assert get_row(db, handle.id)["status"] == "awaiting"


# Terminal outcomes clear the inbox.


@pytest.mark.parametrize("then", ["done", "stop", "raise"])
def test_terminal_outcome_clears_inbox(gendurable_app, db, then):
    handle = start_shipment(then=then, max_attempts=1)
    gendurable_app.drain()
    send(gendurable_app, "note")
    send(gendurable_app, "shipped")

    gendurable_app.drain()

    row = get_row(db, handle.id)
    assert row["status"] in ("done", "failed")
    assert row["inbox"] == []
    assert signal_rows(db, handle.id) == []


def expire_lease(db, instance_id: int) -> None:
    """Make a row look picked, on its last attempt, by a worker that died."""
    db.execute(
        "UPDATE gen_durable SET status = 'running', attempt = max_attempts, lease_owner = 'dead', "
        "lease_expires_at = now() - interval '1 minute' WHERE id = %s",
        (instance_id,),
    )


def test_cancel_clears_inbox(gendurable_app, db):
    handle = start_shipment()
    gendurable_app.drain()
    send(gendurable_app, "note")

    assert handle.cancel() == "cancelled"

    assert get_row(db, handle.id)["inbox"] == []
    assert signal_rows(db, handle.id) == []


def test_reaper_failure_clears_inbox(gendurable_app, db):
    handle = start_shipment(max_attempts=1)
    send(gendurable_app, "note")
    expire_lease(db, handle.id)

    reap_once(gendurable_app._store)

    assert get_row(db, handle.id)["status"] == "failed"
    assert get_row(db, handle.id)["inbox"] == []
    assert signal_rows(db, handle.id) == []


def test_reaper_cancel_clears_inbox(gendurable_app, db):
    handle = start_shipment()
    send(gendurable_app, "note")
    expire_lease(db, handle.id)
    db.execute("UPDATE gen_durable SET cancel_requested = true WHERE id = %s", (handle.id,))

    reap_once(gendurable_app._store)

    assert get_row(db, handle.id)["status"] == "cancelled"
    assert get_row(db, handle.id)["inbox"] == []
    assert signal_rows(db, handle.id) == []


def test_expiry_clears_inbox(gendurable_app, db):
    handle = start_shipment(expires=0)
    send(gendurable_app, "note")

    reap_once(gendurable_app._store)

    assert get_row(db, handle.id)["status"] == "cancelled"
    assert get_row(db, handle.id)["inbox"] == []
    assert signal_rows(db, handle.id) == []


def test_truncate_empties_signal_table(gendurable_app, gendurable_database_url, db):
    start_shipment()
    send(gendurable_app, "note")

    truncate(gendurable_database_url)

    assert db.execute("SELECT count(*) AS n FROM gen_durable_signals").fetchone()["n"] == 0


# Signals that arrive while a step runs.


class Collector(FSM):
    """Collects the payloads of "go" signals until it has ``target`` of them.

    With ``echo``, the first collecting step sends one more "go" to its own instance over a
    connection of its own while it runs.
    """

    class State(BaseModel):
        target: int
        got: list[int] = []
        echo: bool = False
        direct: bool = False

    @step(initial=True)
    def wait(self, state: State, ctx):
        return Await({"go"}, "collect")

    @step
    def collect(self, state: State, ctx):
        contexts.append(ctx)
        if state.echo and not state.got:
            with psycopg.connect(ctx.app.database_url, autocommit=True) as conn:
                assert ctx.app.signal(Collector, ctx.correlation_key, "go", 99, connection=conn)
        got = state.got + [signal.payload for signal in ctx.awaited]
        new_state = state.model_copy(update={"got": got})
        if len(got) >= state.target:
            return Done(got, state=new_state)
        if state.direct:
            return Await({"go"}, "collect", new_state)
        return Next("wait", new_state)


def send_go(app, payload: int) -> bool:
    return app.signal(Collector, "pack", "go", payload)


@pytest.mark.parametrize("direct", [False, True], ids=["next-then-await", "await-again"])
def test_signal_during_step_wakes_next_await(gendurable_app, db, direct):
    handle = Collector.start(Collector.State(target=2, echo=True, direct=direct),
                             correlation_key="pack")
    gendurable_app.drain()
    send_go(gendurable_app, 1)

    counts = gendurable_app.drain()

    assert counts == ({"next": 1, "done": 1} if direct else {"next": 2, "done": 1})
    assert handle.result(timeout=0) == [1, 99]
    assert [[s.payload for s in ctx.awaited] for ctx in contexts] == [[1], [99]]
    assert signal_rows(db, handle.id) == []


@pytest.mark.parametrize("direct", [False, True], ids=["next-then-await", "await-again"])
def test_pack_accumulates_over_awaits(gendurable_app, db, direct):
    handle = Collector.start(Collector.State(target=6, direct=direct), correlation_key="pack")
    gendurable_app.drain()

    send_go(gendurable_app, 1)
    gendurable_app.drain()
    for payload in (2, 3, 4):
        send_go(gendurable_app, payload)
    gendurable_app.drain()
    assert get_row(db, handle.id)["state"]["got"] == [1, 2, 3, 4]
    assert get_row(db, handle.id)["status"] == "awaiting"
    send_go(gendurable_app, 5)
    send_go(gendurable_app, 6)
    gendurable_app.drain()

    assert handle.result(timeout=0) == [1, 2, 3, 4, 5, 6]
    assert [[s.payload for s in ctx.awaited] for ctx in contexts] == [[1], [2, 3, 4], [5, 6]]


# A step retried after an Await woke it.


class Flaky(FSM):
    """Fails once in the step an Await woke, then waits for the next "go"."""

    backoff = staticmethod(lambda attempt: 0.0)

    class State(BaseModel):
        n: int = 0

    @step(initial=True)
    def wait(self, state: State, ctx):
        return Await({"go"}, "handle")

    @step
    def handle(self, state: State, ctx):
        contexts.append(ctx)
        if ctx.attempt == 1:
            raise RuntimeError("first attempt fails")
        return Await({"go"}, "finish")

    @step
    def finish(self, state: State, ctx):
        return Done(len(ctx.awaited))


def test_retry_keeps_awaited_signals(gendurable_app, db):
    handle = Flaky.start(Flaky.State(), correlation_key="flaky")
    gendurable_app.drain()
    gendurable_app.signal(Flaky, "flaky", "go")

    gendurable_app.drain()

    assert [(ctx.attempt, names(ctx.awaited)) for ctx in contexts] == [(1, ["go"]), (2, ["go"])]
    row = get_row(db, handle.id)
    assert row["status"] == "awaiting", "the retried step consumed the signal that woke it"
    assert signal_rows(db, handle.id) == []
