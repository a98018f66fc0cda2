"""``gendurable signal``: sending a signal from the command line."""

from __future__ import annotations

import pytest

from gendurable.cli import EXIT_NOT_FOUND, EXIT_OK, EXIT_USAGE
from tests.fsm_support import FSM_APP

from . import fsm_app

pytestmark = pytest.mark.slow

PARCEL = fsm_app.Parcel._definition.name


def test_signal_command_delivers(app, db, cluster):
    handle = fsm_app.Parcel.start(fsm_app.Parcel.State(parcel=1), correlation_key="parcel-1")
    app.drain(["fsm_parcels"])
    assert handle.status() == "awaiting"

    result = cluster.run("signal", "-A", FSM_APP, PARCEL, "parcel-1", "shipped", '{"json": 1}')

    assert result.returncode == EXIT_OK, result.stderr
    assert f"signal shipped delivered to {PARCEL} parcel-1" in result.stdout
    assert handle.status() == "available"
    assert app.drain(["fsm_parcels"]) == {"done": 1}
    assert handle.result(timeout=0) == {"json": 1}


def test_signal_command_without_instance(app, db, cluster):
    fsm_app.Parcel.start(fsm_app.Parcel.State(parcel=1), correlation_key="parcel-1")

    result = cluster.run("signal", "-A", FSM_APP, PARCEL, "parcel-2", "shipped")

    assert result.returncode == EXIT_NOT_FOUND
    assert f"no live instance of {PARCEL} has key 'parcel-2'" in result.stderr
    assert db.value("SELECT count(*) FROM gen_durable_signals") == 0


def test_signal_command_suggests_fsm_name(app, db, cluster):
    result = cluster.run("signal", "-A", FSM_APP, PARCEL[:-1], "parcel-1", "shipped")

    assert result.returncode == EXIT_NOT_FOUND
    assert f"did you mean {PARCEL!r}?" in result.stderr


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ("{json}", "PAYLOAD must be JSON"),
        ("NaN", "which JSON cannot represent"),
        ('{"note": "a\\u0000b"}', "NUL character"),
    ],
    ids=["not-json", "nan", "nul"],
)
def test_signal_command_rejects_bad_payload(app, db, cluster, payload, message):
    fsm_app.Parcel.start(fsm_app.Parcel.State(parcel=1), correlation_key="parcel-1")

    result = cluster.run("signal", "-A", FSM_APP, PARCEL, "parcel-1", "shipped", payload)

    assert result.returncode == EXIT_USAGE, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert db.value("SELECT count(*) FROM gen_durable_signals") == 0
