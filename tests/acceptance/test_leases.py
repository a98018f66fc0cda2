"""Leases: a long step keeps its lease while the reaper runs, and a row picked again is
leased to its current attempt only."""

from __future__ import annotations

import pytest

from . import jobs_app
from .support import wait_until

pytestmark = pytest.mark.slow


def test_long_step_keeps_lease(app, db, cluster):
    worker = cluster.worker("--beat", lease_timeout=1, reaper_interval=0.3)
    db.wait_listening(1)
    job_id = app.insert(jobs_app.block.new("long"), db.conn).id
    wait_until(lambda: db.count_executions(job_id) == 1, "the step is running")
    ((owner, first_expiry),) = db.rows(
        "SELECT lease_owner, lease_expires_at FROM gen_durable WHERE id = %s", (job_id,)
    )

    # Let two more lease periods pass on the database's clock.
    wait_until(
        lambda: db.value("SELECT now() > %s + interval '2 seconds'", (first_expiry,)),
        "two lease periods have passed",
    )
    # A row whose lease has already expired shows that the reaper is running right now.
    with db.conn.transaction():
        ghost = jobs_app.record.apply_async(args=(0,), connection=db.conn).id
        db.conn.execute(
            "UPDATE gen_durable SET status = 'running', attempt = 1, lease_owner = 'ghost', "
            "lease_expires_at = now() - interval '1 second', attempted_at = now() WHERE id = %s",
            (ghost,),
        )
    wait_until(lambda: db.status(ghost) == "done", "the reaper rescued the expired row")

    ((status, current_owner, expiry),) = db.rows(
        "SELECT status::text, lease_owner, lease_expires_at FROM gen_durable WHERE id = %s",
        (job_id,),
    )
    assert status == "running"
    assert current_owner == owner
    assert expiry > first_expiry, "the worker extended the lease"
    db.release("long")
    wait_until(lambda: db.status(job_id) == "done", "the long step is done")
    ((attempt, pid, ended_at, _),) = db.executions(job_id)
    assert (attempt, pid) == (1, worker.pid)
    assert ended_at is not None
    assert db.value("SELECT errors FROM gen_durable WHERE id = %s", (job_id,)) == []


def _give_back(db, job_id):
    """Make a leased row runnable again by hand, as the reaper does with an expired lease."""
    db.conn.execute(
        "UPDATE gen_durable SET status = 'available', lease_owner = NULL, "
        "lease_expires_at = NULL, run_at = now() WHERE id = %s",
        (job_id,),
    )


def test_lost_lease_then_repicked_is_extended(app, db, cluster):
    settings = {"lease_timeout": 1, "reaper_interval": 0.3, "poll_interval": 0.2}
    worker = cluster.worker("--queues", "default=1", **settings)
    cluster.beat(**settings)
    db.wait_listening(1)
    job_id = app.insert(jobs_app.block_each_attempt.new("stolen"), db.conn).id
    wait_until(lambda: db.count_executions(job_id) == 1, "the first attempt is running")

    # Another owner takes the lease for an hour, as if the reaper had given the row to another
    # worker. The first attempt's outcome must then be discarded.
    db.conn.execute(
        "UPDATE gen_durable SET lease_owner = 'thief', lease_expires_at = now() + interval '1 hour' "
        "WHERE id = %s",
        (job_id,),
    )
    worker.wait_log(f"lease of instance {job_id} was lost")
    db.release("stolen/1")
    worker.wait_log(f"outcome of instance {job_id} discarded")
    _give_back(db, job_id)
    wait_until(lambda: db.count_executions(job_id) == 2, "the same worker picks the row again")
    ((owner, first_expiry),) = db.rows(
        "SELECT lease_owner, lease_expires_at FROM gen_durable WHERE id = %s", (job_id,)
    )

    wait_until(
        lambda: db.value("SELECT now() > %s + interval '2 seconds'", (first_expiry,)),
        "two lease periods have passed",
    )
    ((status, current_owner, attempt, errors),) = db.rows(
        "SELECT status::text, lease_owner, attempt, errors FROM gen_durable WHERE id = %s",
        (job_id,),
    )
    assert (status, current_owner, attempt) == ("running", owner, 2), (
        "the second attempt's lease must be extended although the first one's was lost"
    )
    assert errors == []
    db.release("stolen/2")
    wait_until(lambda: db.status(job_id) == "done", "the second attempt is done")
    assert [execution[:2] for execution in db.executions(job_id)] == [
        (1, worker.pid), (2, worker.pid)
    ]


def test_stale_attempt_outcome_is_discarded(app, db, cluster):
    # The lease is long (60 s by default) and no reaper runs, so only the test moves the row.
    worker = cluster.worker("--queues", "default=2", poll_interval=0.2)
    db.wait_listening(1)
    job_id = app.insert(jobs_app.block_each_attempt.new("stale"), db.conn).id
    wait_until(lambda: db.count_executions(job_id) == 1, "the first attempt is running")

    # This is what the reaper does when the worker's lease keeper could not reach the database
    # for a lease period. The row is runnable again while its first attempt still runs.
    _give_back(db, job_id)
    wait_until(lambda: db.count_executions(job_id) == 2,
               "the same worker picks the row again into its free slot")
    db.release("stale/1")
    wait_until(
        lambda: db.status(job_id) != "running"
        or f"outcome of instance {job_id} discarded" in worker.log(),
        "the first attempt's outcome was handled",
    )
    assert db.status(job_id) == "running", (
        "the outcome of a superseded attempt must not finish the row while the current "
        "attempt runs"
    )
    db.release("stale/2")
    wait_until(lambda: db.status(job_id) == "done", "the second attempt is done")
