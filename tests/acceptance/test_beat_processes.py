"""Real ``gendurable beat`` processes: several at once fire each tick once, one killed
mid-run leaves no gap, a beat logs its schedules at start, and beat wakes workers for rows
that became due.
"""

from __future__ import annotations

import signal
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from gendurable.cli import EXIT_USAGE

from . import jobs_app
from .support import wait_until

pytestmark = pytest.mark.slow

BEAT_APP = "tests.acceptance.beat_app:app"
HEARTBEAT = "tests.acceptance.beat_app.heartbeat"
NIGHTLY = "tests.acceptance.beat_app.nightly"


def tick_count(db) -> int:
    return int(db.value("SELECT count(*) FROM gen_durable_ticks WHERE schedule = %s", (HEARTBEAT,)))


def test_three_beats_one_killed(db, cluster):
    beats = [
        cluster.start("beat", "beat", "-A", BEAT_APP, beat_interval=0.1) for _ in range(3)
    ]
    for beat in beats:
        beat.wait_log("beat started")
    wait_until(lambda: tick_count(db) >= 3, "the beats fire three ticks")

    beats[0].send(signal.SIGKILL)
    assert beats[0].wait_exit() == -signal.SIGKILL
    at_kill = tick_count(db)
    wait_until(lambda: tick_count(db) >= at_kill + 3, "the other beats fire three more ticks")
    for beat in beats[1:]:
        beat.send(signal.SIGTERM)
    for beat in beats[1:]:
        assert beat.wait_exit() == 0

    ticks = db.rows(
        "SELECT tick, instance_id FROM gen_durable_ticks WHERE schedule = %s ORDER BY tick",
        (HEARTBEAT,),
    )
    instances = db.rows("SELECT id FROM gen_durable WHERE fsm = %s ORDER BY id", (HEARTBEAT,))
    assert len(ticks) >= at_kill + 3
    assert len({tick for tick, _ in ticks}) == len(ticks)
    assert [instance_id for _, instance_id in ticks] == [row[0] for row in instances]
    # Every second between the first and the last tick fired: the kill left no gap.
    gaps = [later - earlier for (earlier, _), (later, _) in zip(ticks, ticks[1:], strict=False)]
    assert set(gaps) == {timedelta(seconds=1)}
    for beat in beats:
        log = beat.log()
        assert "Traceback" not in log, log
        assert " ERROR " not in log, log
        assert " WARNING " not in log, log


def test_beat_logs_next_fire_times(db, cluster):
    beat = cluster.start("beat", "beat", "-A", BEAT_APP)
    beat.wait_log("beat started")

    registered = dict(db.rows("SELECT name, registered_at FROM gen_durable_schedules"))
    lines = [line.split(" INFO gendurable.beat: ", 1)[1] for line in beat.log().splitlines()
             if " INFO gendurable.beat: schedule " in line]
    [heartbeat] = [line for line in lines if HEARTBEAT in line]
    [nightly] = [line for line in lines if NIGHTLY in line]
    assert heartbeat.startswith(f"schedule {HEARTBEAT} (every 1 s, misfire latest): next at ")
    assert nightly.startswith(
        f"schedule {NIGHTLY} (cron 0 3 * * * Europe/Paris, misfire latest): next at "
    )
    next_heartbeat = datetime.fromisoformat(heartbeat.rsplit(" ", 1)[1])
    assert next_heartbeat == registered[HEARTBEAT] + timedelta(seconds=1)
    next_nightly = datetime.fromisoformat(nightly.rsplit(" ", 1)[1])
    next_nightly = next_nightly.astimezone(ZoneInfo("Europe/Paris"))
    assert (next_nightly.hour, next_nightly.minute) == (3, 0)
    assert timedelta(0) < next_nightly - registered[NIGHTLY] <= timedelta(days=1)


def test_beat_wakes_worker_for_due_row(app, db, cluster):
    # The worker polls once a minute, and an insert notifies only for rows due at once. So a
    # countdown job that runs within 20 s was woken by the beat.
    beat = cluster.beat(beat_interval=0.2)
    cluster.worker(poll_interval=60)
    beat.wait_log("beat started")
    db.wait_listening(1)

    job = jobs_app.record.apply_async(args=(1,), countdown=2, connection=db.conn).id

    wait_until(lambda: db.status(job) == "done", "the woken worker ran the due job", 20)
    [(_, _, ended_at, _)] = db.executions(job)
    run_at = db.value("SELECT run_at FROM gen_durable WHERE id = %s", (job,))
    assert ended_at >= run_at


@pytest.mark.parametrize(
    ("attribute", "message"),
    [
        pytest.param(
            "misspelt",
            "unknown key 'shedule' in beat_schedule entry 'typo' (did you mean 'schedule'?)",
            id="misspelt-key",
        ),
        pytest.param(
            "unknown_task",
            "schedule 'ghost' cannot start its target: unknown job or FSM 'nowhere.job'",
            id="unknown-task",
        ),
    ],
)
def test_beat_rejects_invalid_schedule(db, cluster, attribute, message):
    # Like the worker's invalid --queues: a usage error with one line, not a traceback.
    result = cluster.run("beat", "-A", f"tests.acceptance.beat_app:{attribute}", timeout=30)

    assert result.returncode == EXIT_USAGE, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert db.value("SELECT count(*) FROM gen_durable") == 0
