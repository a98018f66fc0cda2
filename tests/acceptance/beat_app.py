"""The app that the beat acceptance tests run in real ``gendurable beat`` processes.

Beats load it with ``-A tests.acceptance.beat_app:app``; the database comes from
``GENDURABLE_DATABASE_URL``. Tests never import it, because its periodic jobs would then be
registered in the test process, where every Scheduler would fire them.
"""

from __future__ import annotations

from gendurable import App, durable_job

# Apps whose beat must fail to start: a misspelt key, and a task that names no job.
misspelt = App(include=(), beat_schedule={"typo": {"task": "tests.acceptance.beat_app.heartbeat",
                                                   "shedule": 60}})
unknown_task = App(include=(), beat_schedule={"ghost": {"task": "nowhere.job", "schedule": 60}})
# Created last, so that it is the current app of a process that loads this module.
app = App(include=())


@durable_job(every=1)
def heartbeat() -> str:
    """Start once a second; the tests count these instances against the fired ticks."""
    return "beat"


@durable_job(cron="0 3 * * *", timezone="Europe/Paris")
def nightly(keep_days: int = 30) -> int:
    """Start every night at 03:00 in Paris; the tests only read its next fire time."""
    return keep_days
