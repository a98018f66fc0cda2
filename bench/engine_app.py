"""The app of bench/engine.py: a no-op job, a three-step state machine and a probe job."""

from __future__ import annotations

from pydantic import BaseModel

from bench.systems._common import report_probe_start
from gendurable import FSM, App, Done, Next, durable_job, step

# Jobs use the current app: bench/engine.py makes one App current per wakeup channel.
app = App()


@durable_job
def noop(i: int) -> None:
    return None


@durable_job
def probe(probe_id: int) -> None:
    report_probe_start(probe_id)


class ThreeSteps(FSM):
    """Three no-op steps: two Next outcomes, then Done."""

    class State(BaseModel):
        i: int

    @step(initial=True)
    def first(self, state: State, ctx: object) -> Next:
        return Next("second")

    @step
    def second(self, state: State, ctx: object) -> Next:
        return Next("third")

    @step
    def third(self, state: State, ctx: object) -> Done:
        return Done()
