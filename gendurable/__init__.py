"""gendurable: durable jobs and state machines on PostgreSQL."""

from .app import App, Queue, current_app
from .context import Child, Context, Signal
from .fsm import FSM, step
from .handle import Handle
from .job import DurableJob, durable_job
from .outcomes import Await, Children, Done, Next, Retry, Stop
from .settings import Settings
from .status import Status

__all__ = [
    "FSM",
    "App",
    "Await",
    "Child",
    "Children",
    "Context",
    "Done",
    "DurableJob",
    "Handle",
    "Next",
    "Queue",
    "Retry",
    "Settings",
    "Signal",
    "Status",
    "Stop",
    "current_app",
    "durable_job",
    "step",
]
