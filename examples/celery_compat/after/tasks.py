"""The same project on gendurable: the decorator changed, the bodies and call sites did not."""

from gendurable import App
from gendurable.contrib.celery import shared_task
from gendurable.schedules import crontab

# No URL: the embedded PostgreSQL in ./.gendurable. Set GENDURABLE_DATABASE_URL for a server.
app = App(
    beat_schedule={
        "nightly-report": {"task": "tasks.nightly_report", "schedule": crontab(minute=0, hour=3)},
    },
)


@shared_task(bind=True, autoretry_for=(ConnectionError,), retry_backoff=True, max_retries=5,
             queue="emails")
def send_welcome(self, user_id: int, template: str = "default") -> str:
    return f"welcome ({template}) sent to {user_id} after {self.request.retries} retries"


@shared_task(name="tasks.nightly_report")
def nightly_report() -> str:
    return "report"
