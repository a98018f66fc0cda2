"""The Sentry integration reports final step failures through a real sentry_sdk client."""

import pytest

from gendurable import durable_job
from gendurable.contrib import sentry

sentry_sdk = pytest.importorskip("sentry_sdk")


@durable_job(max_attempts=2)
def always_fails() -> None:
    raise RuntimeError("card declined")


class MemoryTransport(sentry_sdk.transport.Transport):
    """Keeps events in memory: the client is real, nothing leaves the process."""

    def __init__(self, options=None):
        super().__init__(options)
        self.events = []

    def capture_envelope(self, envelope):
        for item in envelope.items:
            if item.type == "event":
                self.events.append(item.payload.json)


@pytest.fixture
def sent_events():
    transport = MemoryTransport()
    sentry_sdk.init(dsn="http://key@127.0.0.1:9/1", transport=transport, default_integrations=False)
    yield transport.events
    sentry.detach()
    sentry_sdk.init()


def test_final_failure_is_reported(gendurable_app, sent_events):
    sentry.attach()
    always_fails.delay()
    gendurable_app.drain(with_scheduled=True)
    exceptions = [e for e in sent_events if "exception" in e]
    assert len(exceptions) == 1
    assert exceptions[0]["tags"]["gendurable.step"] == "perform"
    assert exceptions[0]["tags"]["gendurable.final"] is True


def test_every_attempt_reports_retries(gendurable_app, sent_events):
    sentry.attach(every_attempt=True)
    always_fails.delay()
    gendurable_app.drain(with_scheduled=True)
    exceptions = [e for e in sent_events if "exception" in e]
    assert len(exceptions) == 2
