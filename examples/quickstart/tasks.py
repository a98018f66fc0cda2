"""The quickstart's jobs. With no database URL set, the App starts an embedded PostgreSQL in
./.gendurable, shared by every process started from the same folder."""

import asyncio

from gendurable import App, Queue, durable_job

app = App(queues={"default": Queue(concurrency=10), "emails": Queue(concurrency=4)})


@durable_job
def add(a: int, b: int) -> int:
    return a + b


@durable_job(queue="emails", max_attempts=3)
def send_welcome(ctx, user_id: int, *, template: str = "default") -> str:
    # The first attempt fails on purpose, to show a retry with backoff.
    if ctx.attempt == 1:
        raise ConnectionError("the mail server refused the connection")
    return f"welcome email ({template}) sent to user {user_id} on attempt {ctx.attempt}"


@durable_job
async def word_count(text: str) -> int:
    await asyncio.sleep(0.1)
    return len(text.split())
