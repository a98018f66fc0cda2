"""What each outcome a step returns does to its instance's row."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from pydantic import BaseModel

from gendurable import FSM, Await, Children, Done, Next, Retry, Status, Stop, step
from gendurable.errors import InstanceFailed

from .helpers import db_now, get_row

# (fsm class name, step, attempt) of every step run, in order.
runs: list[tuple[str, str, int]] = []


@pytest.fixture(autouse=True)
def _forget_runs():
    runs.clear()


def no_wait(attempt: int) -> float:
    return 0.0


class Stepper(FSM):
    """Returns from its first step the outcome that the state's ``plan`` names."""

    backoff = no_wait
    max_attempts = 3

    class State(BaseModel):
        plan: str
        n: int = 0

    @step(initial=True)
    def first(self, state: State, ctx):
        runs.append(("Stepper", "first", ctx.attempt))
        bumped = state.model_copy(update={"n": state.n + 1})
        if state.plan == "next":
            return Next("second", bumped)
        if state.plan == "next-later":
            return Next("second", bumped, delay=timedelta(minutes=5))
        if state.plan == "next-dict":
            return Next("second", {"plan": "next-dict", "n": 41})

        if state.plan == "retry":
            return Retry(delay=0, state=bumped)
        if state.plan == "retry-later":
            return Retry(delay=600)
        if state.plan == "retry-backoff":
            return Retry()

        if state.plan == "done-with-state":
            return Done({"n": bumped.n}, state=bumped)
        if state.plan == "stop":
            return Stop("the customer left", state=bumped)

        if state.plan == "raise":
            raise ValueError(f"boom on attempt {ctx.attempt}")
        if state.plan == "raise-once":
            if ctx.attempt == 1:
                raise ValueError("first attempt fails")
            return Next("second", bumped)
        if state.plan == "non-outcome":
            return {"not": "an outcome"}
        if state.plan == "missing-step":
            return Next("secnod")
        if state.plan == "invalid-state":
            return Next("second", state.model_copy(update={"n": "many"}))

        if state.plan == "await":
            return Await({"go", "stop"}, "second", timeout=timedelta(hours=1))
        if state.plan == "await-forever":
            return Await("go", "second")
        raise AssertionError(f"unknown plan {state.plan!r}")

    @step
    def second(self, state: State, ctx):
        runs.append(("Stepper", "second", ctx.attempt))
        return Done(state.n)


def start(plan: str):
    return Stepper.start(Stepper.State(plan=plan))


# Next.


def test_next_commits_state_and_moves(gendurable_app, db):
    handle = start("next")

    assert gendurable_app.drain() == {"next": 1, "done": 1}

    assert runs == [("Stepper", "first", 1), ("Stepper", "second", 1)]
    assert handle.result(timeout=0) == 1
    row = get_row(db, handle.id)
    assert row["step"] == "second"
    assert row["state"] == {"plan": "next", "n": 1}


def test_next_accepts_dict_state(gendurable_app, db):
    handle = start("next-dict")

    assert gendurable_app.drain() == {"next": 1, "done": 1}

    assert handle.result(timeout=0) == 41
    assert get_row(db, handle.id)["state"] == {"plan": "next-dict", "n": 41}


def test_next_resets_attempt(gendurable_app, db):
    handle = start("raise-once")

    assert gendurable_app.drain() == {"retried": 1, "next": 1, "done": 1}

    assert runs == [
        ("Stepper", "first", 1), ("Stepper", "first", 2), ("Stepper", "second", 1),
    ]
    assert get_row(db, handle.id)["attempt"] == 1


def test_next_delay_schedules_step(gendurable_app, db):
    handle = start("next-later")

    assert gendurable_app.drain() == {"next": 1}

    row = get_row(db, handle.id)
    assert row["status"] == "available"
    assert row["step"] == "second"
    assert row["state"] == {"plan": "next-later", "n": 1}
    assert row["attempt"] == 0
    wait = (row["run_at"] - db_now(db)).total_seconds()
    assert 290 < wait <= 300
    assert gendurable_app.drain(with_scheduled=True) == {"done": 1}
    assert handle.result(timeout=0) == 1


# Retry.


def test_retry_counts_attempts_until_failed(gendurable_app, db):
    handle = start("retry")

    assert gendurable_app.drain() == {"retried": 2, "failed": 1}

    assert runs == [("Stepper", "first", n) for n in (1, 2, 3)]
    row = get_row(db, handle.id)
    assert row["status"] == "failed"
    assert row["attempt"] == 3
    assert row["state"]["n"] == 3, "each Retry commits its state for the next attempt"
    assert "Retry returned on the last of 3 attempts" in row["errors"][-1]["error"]


def test_retry_delay_schedules_attempt(gendurable_app, db):
    handle = start("retry-later")

    assert gendurable_app.drain() == {"retried": 1}

    row = get_row(db, handle.id)
    assert row["status"] == "available"
    assert row["step"] == "first"
    assert row["attempt"] == 1
    wait = (row["run_at"] - db_now(db)).total_seconds()
    assert 590 < wait <= 600


def test_retry_without_delay_uses_backoff(gendurable_app, db):
    handle = start("retry-backoff")

    assert gendurable_app.drain() == {"retried": 2, "failed": 1}

    assert get_row(db, handle.id)["attempt"] == 3


# Exceptions.


def test_exception_retried_then_failed(gendurable_app, db):
    handle = start("raise")

    assert gendurable_app.drain() == {"retried": 2, "failed": 1}

    row = get_row(db, handle.id)
    assert row["status"] == "failed"
    assert [error["attempt"] for error in row["errors"]] == [1, 2, 3]
    assert [error["step"] for error in row["errors"]] == ["first"] * 3
    assert row["errors"][-1]["error"] == "ValueError: boom on attempt 3"
    assert "Traceback" in row["errors"][-1]["traceback"]
    with pytest.raises(InstanceFailed, match="boom on attempt 3"):
        handle.result(timeout=0)


def test_non_outcome_fails_at_once(gendurable_app, db):
    handle = start("non-outcome")

    assert gendurable_app.drain() == {"failed": 1}

    row = get_row(db, handle.id)
    assert row["status"] == "failed"
    assert len(row["errors"]) == 1
    message = row["errors"][-1]["error"]
    assert "returned {'not': 'an outcome'}" in message
    assert "a step returns Next, Retry, Await, Children, Done or Stop" in message


def test_next_to_missing_step_fails_at_once(gendurable_app, db):
    handle = start("missing-step")

    assert gendurable_app.drain() == {"failed": 1}

    row = get_row(db, handle.id)
    assert row["status"] == "failed"
    assert row["step"] == "first"
    assert "has no step 'secnod' (did you mean 'second'?)" in row["errors"][-1]["error"]


def test_invalid_returned_state_fails_at_once(gendurable_app, db):
    # model_copy(update=...) does not validate; the engine does before storing.
    handle = start("invalid-state")

    assert gendurable_app.drain() == {"failed": 1}

    row = get_row(db, handle.id)
    assert row["step"] == "first"
    assert row["state"] == {"plan": "invalid-state", "n": 0}
    assert "InvalidState" in row["errors"][-1]["error"]
    assert "'many'" in row["errors"][-1]["error"]


# Await.


def test_await_parks_row(gendurable_app, db):
    handle = start("await")

    assert gendurable_app.drain() == {"awaiting": 1}

    row = get_row(db, handle.id)
    assert row["status"] == "awaiting"
    assert row["step"] == "second"
    assert sorted(row["awaited_signals"]) == ["go", "stop"]
    assert row["attempt"] == 0
    wait = (row["await_until"] - db_now(db)).total_seconds()
    assert 3590 < wait <= 3600
    assert gendurable_app.drain(with_scheduled=True) == {}, "an awaiting row is not runnable"


def test_await_single_name_without_timeout(gendurable_app, db):
    handle = start("await-forever")

    assert gendurable_app.drain() == {"awaiting": 1}

    row = get_row(db, handle.id)
    assert row["awaited_signals"] == ["go"]
    assert row["await_until"] is None


def test_inspect_awaiting_row(gendurable_app):
    handle = start("await-forever")
    gendurable_app.drain()

    row = gendurable_app.inspect(handle.id)

    assert row["status"] == "awaiting"
    assert row["step"] == "second"


# Done and Stop.


def test_done_sets_result_and_state(gendurable_app, db):
    handle = start("done-with-state")

    assert gendurable_app.drain() == {"done": 1}

    row = get_row(db, handle.id)
    assert row["status"] == "done"
    assert row["result"] == {"n": 1}
    assert row["state"] == {"plan": "done-with-state", "n": 1}
    assert row["finished_at"] is not None
    assert handle.status() == Status.DONE


def test_stop_fails_with_reason(gendurable_app, db):
    handle = start("stop")

    assert gendurable_app.drain() == {"failed": 1}

    assert runs == [("Stepper", "first", 1)], "Stop is not retried"
    row = get_row(db, handle.id)
    assert row["status"] == "failed"
    assert row["state"]["n"] == 1
    assert row["errors"][-1]["error"] == "stopped: the customer left"
    with pytest.raises(InstanceFailed, match="the customer left"):
        handle.result(timeout=0)


# Async steps.


class AsyncSteps(FSM):
    class State(BaseModel):
        n: int

    @step(initial=True)
    async def first(self, state: State, ctx):
        await asyncio.sleep(0)
        runs.append(("AsyncSteps", "first", ctx.attempt))
        return Next("second", state.model_copy(update={"n": state.n + 1}))

    @step
    async def second(self, state: State, ctx):
        runs.append(("AsyncSteps", "second", ctx.attempt))
        return Done(state.n)


def test_async_steps_run(gendurable_app):
    handle = AsyncSteps.start(AsyncSteps.State(n=1))

    assert gendurable_app.drain() == {"next": 1, "done": 1}

    assert runs == [("AsyncSteps", "first", 1), ("AsyncSteps", "second", 1)]
    assert handle.result(timeout=0) == 2


# Children, as an outcome; fan-in has its own tests.


class Leaf(FSM):
    queue = "fsm_outcome_leaves"

    class State(BaseModel):
        n: int

    @step(initial=True)
    def only(self, state: State, ctx):
        return Done(state.n * 10)


class Fanout(FSM):
    class State(BaseModel):
        size: int

    @step(initial=True)
    def spread(self, state: State, ctx):
        return Children([Leaf.new(Leaf.State(n=n)) for n in range(state.size)], "join")

    @step
    def join(self, state: State, ctx):
        return Done(sorted(child.result for child in ctx.children))


def test_children_parks_parent(gendurable_app, db):
    handle = Fanout.start(Fanout.State(size=2))

    assert gendurable_app.drain(queues=["default"]) == {"awaiting": 1}

    row = get_row(db, handle.id)
    assert row["status"] == "awaiting"
    assert row["step"] == "join"
    assert row["pending_children"] == 2
    assert row["awaited_signals"] is None
    children = db.execute(
        "SELECT fsm, queue, status FROM gen_durable WHERE parent_id = %s", (handle.id,)
    ).fetchall()
    assert children == [
        {"fsm": Leaf._definition.name, "queue": "fsm_outcome_leaves", "status": "available"}
    ] * 2


def test_empty_children_join_at_once(gendurable_app):
    handle = Fanout.start(Fanout.State(size=0))

    assert gendurable_app.drain() == {"next": 1, "done": 1}
    assert handle.result(timeout=0) == []
