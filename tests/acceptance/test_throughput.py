"""Many jobs across worker processes: each runs once, and concurrency limits hold."""

from __future__ import annotations

import pytest

from . import jobs_app
from .support import max_overlap, wait_until

pytestmark = pytest.mark.slow


def test_two_workers_run_each_job_once(app, db, cluster):
    # Short leases make the lease keepers extend often while outcomes are applied around them;
    # no reaper runs, so no lease can really be lost.
    first = cluster.worker("--queues", "default=10", lease_timeout=1)
    second = cluster.worker("--queues", "default=10", lease_timeout=1)
    db.wait_listening(2)
    ids = [h.id for h in app.insert_all([jobs_app.record.new(n) for n in range(1000)], db.conn)]

    wait_until(lambda: db.count_status(ids, "done") == 1000, "all 1000 jobs are done", 90)
    assert db.value("SELECT count(*) FROM executions") == 1000
    executed = [job_id for (job_id,) in db.rows("SELECT job_id FROM executions")]
    assert sorted(executed) == sorted(ids), "each job ran exactly once"
    assert db.value("SELECT count(*) FROM executions WHERE attempt <> 1") == 0
    pids = {pid for (pid,) in db.rows("SELECT DISTINCT pid FROM executions")}
    assert pids == {first.pid, second.pid}, "both workers took some jobs"
    assert db.value("SELECT count(*) FROM gen_durable WHERE status <> 'done'") == 0
    for worker in (first, second):
        assert "was lost" not in worker.log(), "a healthy worker reported a lost lease"
        assert "discarded" not in worker.log()


def _intervals(db, ids):
    rows = db.rows(
        "SELECT started_at, ended_at FROM executions WHERE job_id = ANY(%s)", (list(ids),)
    )
    assert all(ended is not None for _, ended in rows)
    return rows


def test_queue_concurrency_bounds_one_worker(app, db, cluster):
    cluster.worker("--queues", "default=3")
    db.wait_listening(1)
    ids = [h.id for h in app.insert_all([jobs_app.sleep_for.new(0.2) for _ in range(12)], db.conn)]

    wait_until(lambda: db.count_status(ids, "done") == 12, "the 12 jobs are done", 30)
    intervals = _intervals(db, ids)
    assert len(intervals) == 12
    highest = max_overlap(intervals)
    assert highest <= 3, f"{highest} steps ran at once in a worker limited to 3"


def test_global_limit_bounds_all_workers(app, db, cluster):
    # Each worker may run 5 steps of "limited" at once; the queue's global limit is 2.
    cluster.worker("--queues", "limited")
    cluster.worker("--queues", "limited")
    db.wait_listening(2)
    inserts = [jobs_app.sleep_for.new(0.2, queue="limited") for _ in range(12)]
    ids = [h.id for h in app.insert_all(inserts, db.conn)]

    wait_until(lambda: db.count_status(ids, "done") == 12, "the 12 jobs are done", 30)
    intervals = _intervals(db, ids)
    assert len(intervals) == 12
    highest = max_overlap(intervals)
    assert highest <= 2, f"{highest} steps of the queue ran at once across the two workers"
