"""Stored rows a worker cannot run as they are: a state that no longer validates, a step or an
FSM that no longer exists, and FSM names resolved by importing their module."""

from __future__ import annotations

import sys
import textwrap
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from psycopg.types.json import Jsonb
from pydantic import BaseModel, ConfigDict

from gendurable import FSM, App, Done, Next, step

from .helpers import get_row


class Account(FSM):
    class State(BaseModel):
        balance: int

    @step(initial=True)
    def open(self, state: State, ctx):
        return Next("close", state.model_copy(update={"balance": state.balance + 1}))

    @step
    def close(self, state: State, ctx):
        return Done(state.balance)


class Strict(FSM):
    class State(BaseModel):
        model_config = ConfigDict(strict=True)

        at: datetime
        count: int

    @step(initial=True)
    def first(self, state: State, ctx):
        return Next("second", state.model_copy(update={"count": state.count + 1}))

    @step
    def second(self, state: State, ctx):
        return Done([state.at.isoformat(), state.count])


def test_stored_state_no_longer_valid_fails_once(gendurable_app, db):
    broken = Account.start(Account.State(balance=1))
    healthy = [Account.start(Account.State(balance=n)) for n in (10, 20)]
    db.execute(
        "UPDATE gen_durable SET state = %s WHERE id = %s",
        (Jsonb({"balance": "lots"}), broken.id),
    )

    assert gendurable_app.drain() == {"failed": 1, "next": 2, "done": 2}

    row = get_row(db, broken.id)
    assert row["status"] == "failed"
    assert row["attempt"] == 1, "a state that does not validate is not retried"
    [error] = row["errors"]
    assert error["step"] == "open"
    assert "InvalidState" in error["error"]
    assert "no longer validates against its State model" in error["error"]
    assert "'lots'" in error["error"]
    assert [h.result(timeout=0) for h in healthy] == [11, 21]


def test_stored_state_of_wrong_shape_fails(gendurable_app, db):
    handle = Account.start(Account.State(balance=1))
    db.execute("UPDATE gen_durable SET state = '[1, 2]' WHERE id = %s", (handle.id,))

    assert gendurable_app.drain() == {"failed": 1}

    assert "no longer validates" in get_row(db, handle.id)["errors"][-1]["error"]


def test_strict_state_round_trips(gendurable_app):
    # The stored form of a datetime is text, which a strict model accepts only from JSON.
    at = datetime.fromisoformat("2030-01-02T03:04:05+00:00")
    handle = Strict.start(Strict.State(at=at, count=1))

    assert gendurable_app.drain() == {"next": 1, "done": 1}
    assert handle.result(timeout=0) == ["2030-01-02T03:04:05+00:00", 2]


def test_removed_step_fails_naming_it(gendurable_app, db):
    handle = Account.start(Account.State(balance=1), max_attempts=2)
    db.execute("UPDATE gen_durable SET step = 'audit' WHERE id = %s", (handle.id,))

    assert gendurable_app.drain(with_scheduled=True) == {"failed": 1}

    row = get_row(db, handle.id)
    assert row["status"] == "failed"
    assert len(row["errors"]) == 1
    assert f"{Account._definition.name} has no step 'audit'" in row["errors"][-1]["error"]


# Dynamic resolution.


def insert_row(db, fsm: str, step: str, state: dict[str, Any], max_attempts: int = 2) -> int:
    """Insert a row as another program would, naming an FSM this process never imported."""
    row = db.execute(
        "INSERT INTO gen_durable (fsm, step, state, max_attempts) VALUES (%s, %s, %s, %s) "
        "RETURNING id",
        (fsm, step, Jsonb(state), max_attempts),
    ).fetchone()
    return int(row["id"])


MACHINES = """
from pydantic import BaseModel

from gendurable import FSM, Done, step


def helper():
    return "not an FSM"


class Greeter(FSM):
    class State(BaseModel):
        who: str

    @step(initial=True)
    def hello(self, state, ctx):
        return Done(f"hello {state.who}")
"""


@pytest.fixture
def packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """Create two new packages on sys.path; importing either one writes a marker file."""
    names: dict[str, Any] = {"markers": tmp_path / "markers"}
    names["markers"].mkdir()
    for role in ("inside", "outside"):
        package = f"fsm_{role}_{uuid.uuid4().hex[:8]}"
        names[role] = package
        folder = tmp_path / package
        folder.mkdir()
        marker = names["markers"] / package
        (folder / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
        (folder / "machines.py").write_text(textwrap.dedent(MACHINES))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield names
    for module in list(sys.modules):
        if module.split(".")[0] in (names["inside"], names["outside"]):
            del sys.modules[module]


@pytest.fixture
def including_app(gendurable_app, gendurable_database_url, packages) -> Iterator[App]:
    app = App(gendurable_database_url, include=[packages["inside"]])
    yield app
    app.close()
    gendurable_app.set_current()


def test_included_package_imported_on_demand(including_app, db, packages):
    name = f"{packages['inside']}.machines.Greeter"
    assert f"{packages['inside']}.machines" not in sys.modules
    instance_id = insert_row(db, name, "hello", {"who": "world"})

    assert including_app.drain() == {"done": 1}

    assert f"{packages['inside']}.machines" in sys.modules
    assert including_app.handle(instance_id).result(timeout=0) == "hello world"


def test_excluded_package_never_imported(including_app, db, packages):
    name = f"{packages['outside']}.machines.Greeter"
    instance_id = insert_row(db, name, "hello", {"who": "world"})

    assert including_app.drain(with_scheduled=True) == {"retried": 1, "failed": 1}

    assert packages["outside"] not in sys.modules
    assert not (packages["markers"] / packages["outside"]).exists()
    row = get_row(db, instance_id)
    assert row["status"] == "failed"
    assert len(row["errors"]) == 2
    error = row["errors"][-1]["error"]
    assert f"unknown job or FSM {name!r}" in error
    assert "outside the packages the app includes" in error
    assert packages["inside"] in error


def test_included_name_not_fsm_fails(including_app, db, packages):
    name = f"{packages['inside']}.machines.helper"
    instance_id = insert_row(db, name, "hello", {}, max_attempts=1)

    assert including_app.drain() == {"failed": 1}

    error = get_row(db, instance_id)["errors"][-1]["error"]
    assert "defines no @durable_job or FSM with that name" in error


def test_included_missing_module_fails(including_app, db, packages):
    name = f"{packages['inside']}.missing.Greeter"
    instance_id = insert_row(db, name, "hello", {}, max_attempts=1)

    assert including_app.drain() == {"failed": 1}

    error = get_row(db, instance_id)["errors"][-1]["error"]
    assert f"importing '{packages['inside']}.missing' failed" in error


def test_unknown_fsm_does_not_stop_drain(including_app, db, packages):
    insert_row(db, f"{packages['outside']}.machines.Greeter", "hello", {}, max_attempts=1)
    handle = Account.start(Account.State(balance=0))

    assert including_app.drain() == {"failed": 1, "next": 1, "done": 1}
    assert handle.result(timeout=0) == 1
