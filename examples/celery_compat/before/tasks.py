"""A Celery project before the move: Redis as broker, a retrying task and a beat schedule.

Shown for comparison; running it needs Celery and a Redis server.
"""

from celery import Celery, shared_task
from celery.schedules import crontab

app = Celery("shop", broker="redis://127.0.0.1:6379/0", backend="redis://127.0.0.1:6379/1")
app.conf.beat_schedule = {
    "nightly-report": {"task": "tasks.nightly_report", "schedule": crontab(minute=0, hour=3)},
}


@shared_task(bind=True, autoretry_for=(ConnectionError,), retry_backoff=True, max_retries=5,
             queue="emails")
def send_welcome(self, user_id: int, template: str = "default") -> str:
    return f"welcome ({template}) sent to {user_id} after {self.request.retries} retries"


@shared_task
def nightly_report() -> str:
    return "report"
