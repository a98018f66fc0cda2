"""Defining and starting state machines: the class, its options, and start()/new()."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from pydantic import BaseModel

from gendurable import FSM, Done, Next, Status, _registry, step
from gendurable.errors import InvalidOption, InvalidState, UnknownQueue

from .helpers import db_now, get_row, row_count


class Checkout(FSM):
    queue = "fsm_payments"
    priority = 4
    max_attempts = 7
    correlation_scope = ("available", "running", "awaiting", "done")

    class State(BaseModel):
        order_id: int
        charge_id: str | None = None

    @step(initial=True)
    def charge(self, state: State, ctx) -> Next:
        return Next("finish", state.model_copy(update={"charge_id": f"ch-{state.order_id}"}))

    @step
    def finish(self, state: State, ctx) -> Done:
        return Done({"order": state.order_id, "charge": state.charge_id})


class Plain(FSM):
    class State(BaseModel):
        n: int

    @step(initial=True)
    def only(self, state: State, ctx) -> Done:
        return Done(state.n)


def fixed_backoff(attempt: int) -> float:
    return 1234.0


class SlowRetry(FSM):
    backoff = fixed_backoff

    class State(BaseModel):
        n: int = 0

    @step(initial=True)
    def fail(self, state: State, ctx) -> Done:
        raise RuntimeError("always fails")


# Class creation.


def test_name_defaults_to_import_path():
    assert Checkout._definition.name == f"{__name__}.Checkout"


def test_subclass_does_not_inherit_name(gendurable_app, db):
    class Named(FSM):
        name = "billing.invoice-v1"

        class State(BaseModel):
            n: int

        @step(initial=True)
        def only(self, state, ctx):
            return Done(state.n)

    class Derived(Named):
        pass

    assert Named._definition.name == "billing.invoice-v1"
    assert Derived._definition.name == f"{__name__}.{Derived.__qualname__}"
    assert _registry.resolve("billing.invoice-v1", ()) is Named._definition
    assert get_row(db, Named.start(Named.State(n=1)).id)["fsm"] == "billing.invoice-v1"


def test_state_found_by_convention():
    assert Checkout._definition.state_model is Checkout.State


def test_steps_and_initial_found():
    definition = Checkout._definition

    assert set(definition.steps) == {"charge", "finish"}
    assert definition.initial_step == "charge"


def test_no_initial_step_rejected():
    with pytest.raises(InvalidOption, match="exactly one @step\\(initial=True\\), found none"):

        class NoInitial(FSM):
            class State(BaseModel):
                n: int

            @step
            def only(self, state, ctx):
                return Done()


def test_two_initial_steps_rejected():
    with pytest.raises(InvalidOption, match="found first, second"):

        class TwoInitial(FSM):
            class State(BaseModel):
                n: int

            @step(initial=True)
            def first(self, state, ctx):
                return Done()

            @step(initial=True)
            def second(self, state, ctx):
                return Done()


def test_missing_state_model_rejected():
    with pytest.raises(InvalidOption, match="nested pydantic model named State"):

        class Stateless(FSM):
            @step(initial=True)
            def only(self, state, ctx):
                return Done()


def test_step_named_like_fsm_method_rejected():
    # A step named start would replace the classmethod, and Machine.start(state) would call
    # the step instead of starting an instance.
    with pytest.raises(InvalidOption, match="'start'"):

        class Shadowing(FSM):
            class State(BaseModel):
                n: int

            @step(initial=True)
            def start(self, state, ctx):
                return Done()


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("queue", "", "queue must be a non-empty string"),
        ("priority", 10, "priority must be an integer from 0"),
        ("max_attempts", 0, "max_attempts must be an integer from 1"),
        ("backoff", 5, "backoff must be a callable"),
        ("correlation_scope", ("available", "finished"), "'finished', which is not a status"),
    ],
)
def test_invalid_class_option_rejected(option, value, message):
    namespace = {
        option: value,
        "State": type("State", (BaseModel,), {"__annotations__": {"n": int}}),
        "only": step(initial=True)(lambda self, state, ctx: Done()),
    }

    with pytest.raises(InvalidOption, match=message):
        type("BadOption", (FSM,), namespace)


# Class options reach the row.


def test_class_options_reach_row(gendurable_app, db):
    handle = Checkout.start(Checkout.State(order_id=1))

    row = get_row(db, handle.id)
    assert handle.inserted
    assert row["fsm"] == Checkout._definition.name
    assert row["step"] == "charge"
    assert row["state"] == {"order_id": 1, "charge_id": None}
    assert row["status"] == "available"
    assert row["queue"] == "fsm_payments"
    assert row["priority"] == 4
    assert row["max_attempts"] == 7
    assert row["correlation_scope"] == "{available,running,awaiting,done}"


def test_class_backoff_schedules_retry(gendurable_app, db):
    handle = SlowRetry.start(SlowRetry.State())

    assert gendurable_app.drain() == {"retried": 1}

    row = get_row(db, handle.id)
    assert row["status"] == "available"
    wait = (row["run_at"] - db_now(db)).total_seconds()
    assert 1200 < wait <= 1234


def test_defaults_without_class_options(gendurable_app, db):
    row = get_row(db, Plain.start(Plain.State(n=1)).id)

    assert row["queue"] == "default"
    assert row["priority"] == 0
    assert row["max_attempts"] == 20
    assert row["correlation_scope"] == "{available,running,awaiting}"


# Starting.


def test_start_runs_to_done(gendurable_app):
    handle = Checkout.start(Checkout.State(order_id=5))

    assert gendurable_app.drain() == {"next": 1, "done": 1}
    assert handle.status() == Status.DONE
    assert handle.result(timeout=0) == {"order": 5, "charge": "ch-5"}


def test_start_options_reach_row(gendurable_app, db):
    handle = Checkout.start(
        Checkout.State(order_id=2),
        correlation_key="order-2",
        concurrency_key="customer-9",
        queue="default",
        priority=1,
        max_attempts=3,
    )

    row = get_row(db, handle.id)
    assert row["correlation_key"] == "order-2"
    assert row["concurrency_key"] == "customer-9"
    assert row["queue"] == "default"
    assert row["priority"] == 1
    assert row["max_attempts"] == 3


def test_start_countdown_schedules(gendurable_app, db):
    handle = Checkout.start(Checkout.State(order_id=3), countdown=timedelta(minutes=10))

    row = get_row(db, handle.id)
    wait = (row["run_at"] - db_now(db)).total_seconds()
    assert 590 < wait <= 600
    assert gendurable_app.drain() == {}
    assert gendurable_app.drain(with_scheduled=True) == {"next": 1, "done": 1}


def test_start_eta_schedules(gendurable_app, db):
    eta = datetime(2100, 1, 1, tzinfo=UTC)

    handle = Checkout.start(Checkout.State(order_id=4), eta=eta)

    assert get_row(db, handle.id)["run_at"] == eta


def test_start_naive_eta_rejected(gendurable_app, db):
    with pytest.raises(InvalidOption, match="timezone-aware"):
        Checkout.start(Checkout.State(order_id=4), eta=datetime(2100, 1, 1))

    assert row_count(db) == 0


def test_app_start_uses_given_app(gendurable_app, db):
    handle = gendurable_app.start(Plain, Plain.State(n=7))

    assert get_row(db, handle.id)["state"] == {"n": 7}
    assert gendurable_app.drain() == {"done": 1}
    assert handle.result(timeout=0) == 7


def test_app_start_rejects_non_fsm(gendurable_app, db):
    with pytest.raises(InvalidOption, match="start takes an FSM subclass"):
        gendurable_app.start(Plain.State, Plain.State(n=1))  # type: ignore[arg-type]

    assert row_count(db) == 0


def test_new_and_insert_all(gendurable_app, db):
    inserts = [Plain.new(Plain.State(n=n)) for n in range(3)]
    inserts.append(Checkout.new(Checkout.State(order_id=9), correlation_key="order-9"))

    handles = gendurable_app.insert_all(inserts)

    assert [h.inserted for h in handles] == [True, True, True, True]
    assert [get_row(db, h.id)["fsm"] for h in handles] == [Plain._definition.name] * 3 + [
        Checkout._definition.name
    ]
    assert gendurable_app.drain() == {"done": 4, "next": 1}
    assert [h.result(timeout=0) for h in handles[:3]] == [0, 1, 2]


def test_start_in_rolled_back_transaction(gendurable_app, gendurable_database_url, db):
    with psycopg.connect(gendurable_database_url) as conn:
        Plain.start(Plain.State(n=1), connection=conn)
        conn.rollback()

    assert row_count(db) == 0


def test_start_in_committed_transaction(gendurable_app, gendurable_database_url, db):
    with psycopg.connect(gendurable_database_url) as conn:
        handle = Plain.start(Plain.State(n=1), connection=conn)
        assert row_count(db) == 0, "the row is not visible before the caller commits"
        conn.commit()

    assert get_row(db, handle.id)["state"] == {"n": 1}


# Bad input writes nothing.


@pytest.mark.parametrize(
    "state",
    [{"n": 1}, Checkout.State(order_id=1), None, 1],
    ids=["dict", "other-fsm-state", "none", "int"],
)
def test_start_wrong_state_type_rejected(gendurable_app, db, state):
    with pytest.raises(InvalidState, match=r"takes a Plain.State"):
        Plain.start(state)

    assert row_count(db) == 0


def test_start_invalid_state_instance_rejected(gendurable_app, db):
    # model_construct and attribute assignment skip validation; the save validates again.
    unchecked = Plain.State.model_construct(n="not a number")

    with pytest.raises(InvalidState, match="does not validate"):
        Plain.start(unchecked)

    assert row_count(db) == 0


def test_start_unstorable_state_rejected(gendurable_app, db):
    with pytest.raises(InvalidState, match="NUL character"):
        Checkout.start(Checkout.State(order_id=1, charge_id="a\x00b"))

    assert row_count(db) == 0


def test_start_unknown_option_suggests_name(gendurable_app, db):
    with pytest.raises(InvalidOption, match=r"'corelation_key'.*did you mean 'correlation_key'"):
        Checkout.start(Checkout.State(order_id=1), corelation_key="order-1")

    assert row_count(db) == 0


def test_new_unknown_option_suggests_name():
    with pytest.raises(InvalidOption, match="did you mean 'priority'"):
        Plain.new(Plain.State(n=1), priorty=1)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"priority": -1}, "priority must be an integer"),
        ({"max_attempts": 0}, "max_attempts must be an integer"),
        ({"countdown": -5}, "countdown must be 0 or more"),
        ({"queue": ""}, "queue must be a non-empty string"),
        ({"correlation_key": ""}, "correlation_key must be a non-empty string"),
        ({"concurrency_key": 5}, "concurrency_key must be a non-empty string"),
        ({"weight": 0}, "weight must be an integer"),
        ({"weight": -3}, "weight must be an integer"),
        ({"rate_limit": 7}, "rate_limit=7 is not supported"),
        ({"rate_limit": "stripe"}, "is not supported"),
    ],
)
def test_start_invalid_option_rejected(gendurable_app, db, options, message):
    with pytest.raises(InvalidOption, match=message):
        Plain.start(Plain.State(n=1), **options)

    assert row_count(db) == 0


def test_start_unknown_queue_rejected(gendurable_app, db):
    with pytest.raises(UnknownQueue, match="did you mean 'fsm_payments'"):
        Plain.start(Plain.State(n=1), queue="fsm_paymnets")

    assert row_count(db) == 0


def test_correlation_key_callable_of_state(gendurable_app, db):
    handle = Plain.start(Plain.State(n=42), correlation_key=lambda state: f"plain-{state.n}")

    assert get_row(db, handle.id)["correlation_key"] == "plain-42"
