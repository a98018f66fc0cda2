"""Correlation keys deduplicate starts; concurrency keys keep instances from running together."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import psycopg
import pytest
from pydantic import BaseModel

from gendurable import FSM, App, Done, Next, durable_job, step, telemetry

from .helpers import get_row, row_count


class Order(FSM):
    class State(BaseModel):
        order_id: int

    @step(initial=True)
    def only(self, state: State, ctx):
        return Done(state.order_id)


class KeptOrder(FSM):
    correlation_scope = ("available", "running", "awaiting", "done")

    class State(BaseModel):
        order_id: int

    @step(initial=True)
    def only(self, state: State, ctx):
        return Done(state.order_id)


@durable_job(correlation_key=lambda order_id, note="": f"refund-{order_id}")
def refund(order_id: int, note: str = "") -> int:
    return order_id


def test_duplicate_start_returns_existing(gendurable_app, db):
    first = Order.start(Order.State(order_id=1), correlation_key="order-1")
    second = Order.start(Order.State(order_id=2), correlation_key="order-1")

    assert first.inserted is True
    assert second.inserted is False
    assert second.id == first.id
    assert row_count(db) == 1
    assert get_row(db, first.id)["state"] == {"order_id": 1}


def test_same_key_other_fsm_inserts(gendurable_app, db):
    first = Order.start(Order.State(order_id=1), correlation_key="order-1")
    other = KeptOrder.start(KeptOrder.State(order_id=1), correlation_key="order-1")

    assert other.inserted
    assert other.id != first.id


def test_key_free_after_instance_ends(gendurable_app, db):
    first = Order.start(Order.State(order_id=1), correlation_key="order-1")
    gendurable_app.drain()

    again = Order.start(Order.State(order_id=1), correlation_key="order-1")

    assert again.inserted
    assert again.id != first.id
    assert row_count(db) == 2


def test_done_in_scope_keeps_deduplicating(gendurable_app, db):
    first = KeptOrder.start(KeptOrder.State(order_id=1), correlation_key="order-1")
    gendurable_app.drain()
    assert first.status() == "done"

    again = KeptOrder.start(KeptOrder.State(order_id=1), correlation_key="order-1")
    [bulk] = gendurable_app.insert_all(
        [KeptOrder.new(KeptOrder.State(order_id=1), correlation_key="order-1")]
    )

    assert not again.inserted
    assert again.id == first.id
    assert not bulk.inserted
    assert bulk.id == first.id
    assert row_count(db) == 1


def test_start_scope_option_overrides_class(gendurable_app, db):
    scope = ["available", "running", "awaiting", "done"]
    first = Order.start(Order.State(order_id=1), correlation_key="k", correlation_scope=scope)
    gendurable_app.drain()

    again = Order.start(Order.State(order_id=1), correlation_key="k", correlation_scope=scope)

    assert again.id == first.id
    assert not again.inserted


def test_insert_all_deduplicates_within_batch(gendurable_app, db):
    handles = gendurable_app.insert_all([
        Order.new(Order.State(order_id=1), correlation_key="order-1"),
        Order.new(Order.State(order_id=2), correlation_key="order-1"),
        Order.new(Order.State(order_id=3), correlation_key="order-3"),
    ])

    assert [h.inserted for h in handles] == [True, False, True]
    assert handles[1].id == handles[0].id
    assert row_count(db) == 2


@pytest.mark.parametrize("autocommit", [True, False], ids=["autocommit", "transaction"])
def test_racing_starts_insert_once(gendurable_app, gendurable_database_url, db, autocommit):
    rounds = 10
    for round_number in range(rounds):
        key = f"race-{round_number}"
        barrier = threading.Barrier(2)
        handles: list[Any] = [None, None]
        errors: list[BaseException] = []

        def start(
            slot: int,
            key: str = key,
            barrier: threading.Barrier = barrier,
            handles: list[Any] = handles,
            errors: list[BaseException] = errors,
        ) -> None:
            try:
                with psycopg.connect(gendurable_database_url, autocommit=autocommit) as conn:
                    barrier.wait(timeout=10)
                    handles[slot] = Order.start(
                        Order.State(order_id=slot), correlation_key=key, connection=conn
                    )
                    if not autocommit:
                        conn.commit()
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=start, args=(slot,)) for slot in (0, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)

        assert errors == []
        assert sorted(h.inserted for h in handles) == [False, True]
        assert handles[0].id == handles[1].id
        count = db.execute(
            "SELECT count(*) AS n FROM gen_durable WHERE correlation_key = %s", (key,)
        ).fetchone()
        assert count["n"] == 1


def test_job_key_callable_of_arguments(gendurable_app, db):
    first = refund.delay(5)
    second = refund.delay(5, note="again")
    third = refund.apply_async(args=(6,))

    assert get_row(db, first.id)["correlation_key"] == "refund-5"
    assert second.id == first.id
    assert not second.inserted
    assert third.inserted


def test_job_key_string_at_insert(gendurable_app, db):
    first = refund.apply_async(args=(1,), correlation_key="manual")
    second = refund.apply_async(args=(2,), correlation_key="manual")

    assert second.id == first.id
    assert get_row(db, first.id)["correlation_key"] == "manual"


# Concurrency keys.


def running_row(db, key: str) -> None:
    db.execute(
        "INSERT INTO gen_durable (fsm, step, status, concurrency_key, lease_owner, "
        "lease_expires_at, attempt) VALUES ('x.Y', 'only', 'running', %s, 'someone', "
        "now() + interval '1 minute', 1)",
        (key,),
    )


def test_two_running_rows_one_key_rejected(gendurable_app, db):
    running_row(db, "customer-1")
    running_row(db, "customer-2")

    with pytest.raises(psycopg.errors.UniqueViolation) as caught:
        running_row(db, "customer-1")

    assert caught.value.diag.constraint_name == "gen_durable_concurrency_active"


def test_keyed_rows_waiting_while_one_runs(gendurable_app, db):
    running_row(db, "customer-1")
    waiting = Order.start(Order.State(order_id=1), concurrency_key="customer-1")
    free = Order.start(Order.State(order_id=2), concurrency_key="customer-2")

    assert gendurable_app.drain() == {"done": 1}

    assert waiting.status() == "available"
    assert free.status() == "done"


class Keyed(FSM):
    """Two steps, so that each instance passes through the picker twice."""

    class State(BaseModel):
        n: int

    @step(initial=True)
    def first(self, state: State, ctx):
        return Next("second")

    @step
    def second(self, state: State, ctx):
        return Done(state.n)


def test_concurrent_drains_with_keys(gendurable_app, gendurable_database_url, db):
    contended: list[dict[str, Any]] = []

    def record(event: str, measurements: Mapping[str, float], metadata: Mapping[str, Any]) -> None:
        contended.append(dict(metadata))

    handles = gendurable_app.insert_all([
        Keyed.new(Keyed.State(n=n), concurrency_key=f"key-{n % 3}") for n in range(30)
    ])
    apps = [App(gendurable_database_url, include=()) for _ in range(2)]
    gendurable_app.set_current()
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def drain(app: App) -> None:
        try:
            barrier.wait(timeout=10)
            app.drain()
        except BaseException as exc:
            errors.append(exc)

    telemetry.attach("test_fsm_correlation", ["concurrency.contended"], record)
    try:
        threads = [threading.Thread(target=drain, args=(app,)) for app in apps]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        telemetry.detach("test_fsm_correlation")
        for app in apps:
            app.close()

    assert errors == []
    # A drain stops when it picks nothing, which a concurrent drain holding the keys can cause.
    gendurable_app.drain()
    assert [h.result(timeout=0) for h in handles] == list(range(30))
    for metadata in contended:
        assert metadata["attempt"] >= 1
        assert "detail" in metadata
