"""Fan-out and fan-in: Children, the parent's pending count, the join step, cancel and GC."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from gendurable import FSM, Children, Context, Done, durable_job, step
from gendurable._beat.gc import sweep_once

from .helpers import get_row

# The context of every join step that ran, in order.
joins: list[Context] = []


@pytest.fixture(autouse=True)
def _forget_joins():
    joins.clear()


@durable_job(queue="fsm_child_jobs", max_attempts=1)
def square(n: int) -> int:
    if n < 0:
        raise ValueError(f"cannot square the negative number {n}")
    return n * n


class Leaf(FSM):
    queue = "fsm_child_machines"

    class State(BaseModel):
        n: int

    @step(initial=True)
    def only(self, state: State, ctx):
        return Done({"leaf": state.n})


class Parent(FSM):
    """Starts the children its ``plan`` names and joins them."""

    queue = "fsm_parents"
    backoff = staticmethod(lambda attempt: 0.0)

    class State(BaseModel):
        plan: str
        rounds: int = 0

    @step(initial=True)
    def spread(self, state: State, ctx):
        if state.plan == "mixed":
            children = [
                square.new(3, queue="default", priority=2),
                square.new(-1),
                Leaf.new(Leaf.State(n=7), priority=5),
            ]
        else:
            children = [square.new(n) for n in (1, 2)]
        return Children(children, "join")

    @step
    def join(self, state: State, ctx):
        joins.append(ctx)
        if state.plan == "flaky-join" and ctx.attempt == 1:
            raise RuntimeError("the join fails once")
        if state.plan == "two-rounds" and state.rounds == 0:
            again = state.model_copy(update={"rounds": 1})
            return Children([square.new(10)], "join", again)
        return Done([(child.status.value, child.result) for child in ctx.children])


def pending(db, instance_id: int) -> tuple[str, int]:
    row = get_row(db, instance_id)
    return row["status"], row["pending_children"]


def children_of(db, parent_id: int) -> list[dict]:
    return db.execute(
        "SELECT id, fsm, queue, priority, status::text, parent_id FROM gen_durable "
        "WHERE parent_id = %s ORDER BY id",
        (parent_id,),
    ).fetchall()


def test_children_counted_down_one_by_one(gendurable_app, db):
    parent = Parent.start(Parent.State(plan="mixed"))

    assert gendurable_app.drain(["fsm_parents"]) == {"awaiting": 1}

    children = children_of(db, parent.id)
    assert [(c["fsm"], c["queue"], c["priority"]) for c in children] == [
        (square.name, "default", 2),
        (square.name, "fsm_child_jobs", 0),
        (Leaf._definition.name, "fsm_child_machines", 5),
    ]
    assert pending(db, parent.id) == ("awaiting", 3)

    assert gendurable_app.drain(["default"]) == {"done": 1}
    assert pending(db, parent.id) == ("awaiting", 2)

    assert gendurable_app.drain(["fsm_child_jobs"]) == {"failed": 1}
    assert pending(db, parent.id) == ("awaiting", 1), "a failed child counts down too"

    assert gendurable_app.drain(["fsm_child_machines"]) == {"done": 1}
    assert pending(db, parent.id) == ("available", 0)

    assert gendurable_app.drain(["fsm_parents"]) == {"done": 1}


def test_join_sees_each_child(gendurable_app, db):
    parent = Parent.start(Parent.State(plan="mixed"))

    assert gendurable_app.drain() == {"awaiting": 1, "done": 3, "failed": 1}

    [ctx] = joins
    ids = [c["id"] for c in children_of(db, parent.id)]
    assert [child.id for child in ctx.children] == ids
    assert [child.fsm for child in ctx.children] == [
        square.name, square.name, Leaf._definition.name,
    ]
    assert [child.status for child in ctx.children] == ["done", "failed", "done"]
    assert [child.result for child in ctx.children] == [9, None, {"leaf": 7}]
    assert ctx.children[0].error is None
    assert "cannot square the negative number -1" in ctx.children[1].error
    assert parent.result(timeout=0) == [["done", 9], ["failed", None], ["done", {"leaf": 7}]]


def test_cancelled_children_count_down(gendurable_app, db):
    parent = Parent.start(Parent.State(plan="pair"))
    gendurable_app.drain(["fsm_parents"])
    first, second = (c["id"] for c in children_of(db, parent.id))

    assert gendurable_app.cancel(first) == "cancelled"
    assert pending(db, parent.id) == ("awaiting", 1)
    assert gendurable_app.cancel(second) == "cancelled"
    assert pending(db, parent.id) == ("available", 0)

    assert gendurable_app.drain() == {"done": 1}
    assert parent.result(timeout=0) == [["cancelled", None], ["cancelled", None]]


def test_gc_keeps_children_of_live_parent(gendurable_app, db):
    parent = Parent.start(Parent.State(plan="pair"))
    gendurable_app.drain(["fsm_parents"])
    gendurable_app.drain(["fsm_child_jobs"])
    assert pending(db, parent.id) == ("available", 0)

    assert sweep_once(gendurable_app._store, 0, 1000) == 0
    assert len(children_of(db, parent.id)) == 2

    gendurable_app.drain()
    assert parent.status() == "done"
    assert sweep_once(gendurable_app._store, 3600, 1000) == 0, "not old enough yet"
    assert sweep_once(gendurable_app._store, 0, 1000) == 3
    assert db.execute("SELECT count(*) AS n FROM gen_durable").fetchone()["n"] == 0


def test_retried_join_sees_children(gendurable_app, db):
    parent = Parent.start(Parent.State(plan="flaky-join"))

    gendurable_app.drain()

    assert [ctx.attempt for ctx in joins] == [1, 2]
    assert [len(ctx.children) for ctx in joins] == [2, 2]
    assert parent.result(timeout=0) == [["done", 1], ["done", 4]]


def test_second_join_sees_its_own_children(gendurable_app, db):
    parent = Parent.start(Parent.State(plan="two-rounds"))

    gendurable_app.drain()

    assert [len(ctx.children) for ctx in joins] == [2, 1]
    assert parent.result(timeout=0) == [["done", 100]]
