"""Exceptions raised by gendurable. Every error a caller can cause has its own class here."""

from __future__ import annotations

from typing import Any


class GendurableError(Exception):
    """Base class of every gendurable exception."""

    __module__ = "gendurable.errors"


class ConfigurationError(GendurableError):
    """A setting, option or app path is invalid."""


class MigrationError(GendurableError):
    """The database's schema cannot be brought to this version's."""


class InvalidArguments(GendurableError):
    """The arguments of an insert do not fit the job's signature or are not JSON."""


class InvalidOption(GendurableError):
    """An insert or decorator option has a value out of range or of the wrong type."""


class UnknownQueue(ConfigurationError):
    """A queue name is not one the app or worker knows."""


class UnknownJob(GendurableError):
    """A job or FSM name cannot be resolved to a ``@durable_job`` or ``FSM`` subclass."""


class InvalidState(GendurableError):
    """A stored or returned FSM state does not validate against the ``State`` model."""


class InvalidOutcome(GendurableError):
    """A step returned something that is not an outcome, or named a step that does not exist."""


class InstanceConflict(GendurableError):
    """Another live instance already has the correlation key that the operation needs."""


class NoSuchInstance(GendurableError):
    """No live instance has the given id or correlation key."""


class InstanceFailed(GendurableError):
    """The instance ended ``failed``; ``last_error`` carries its final error record."""

    def __init__(self, instance_id: int, last_error: dict[str, Any] | None) -> None:
        self.instance_id = instance_id
        self.last_error = last_error or {}
        message = self.last_error.get("error", "no error was recorded")
        super().__init__(f"instance {instance_id} failed: {message}")


class InstanceCancelled(GendurableError):
    """The instance ended ``cancelled``."""

    def __init__(self, instance_id: int) -> None:
        self.instance_id = instance_id
        super().__init__(f"instance {instance_id} was cancelled")


class StepTimeout(GendurableError):
    """An attempt ran longer than its ``timeout``; raised inside the step."""


class DatabaseUnavailable(GendurableError):
    """The database could not be reached; the message names the URL (without password)."""


for _cls in list(globals().values()):
    if isinstance(_cls, type) and issubclass(_cls, BaseException):
        _cls.__module__ = "gendurable.errors"


def closest(name: str, choices: list[str] | tuple[str, ...] | set[str]) -> str:
    """Return " (did you mean 'x'?)" for the nearest of ``choices``, or an empty string."""
    import difflib

    match = difflib.get_close_matches(name, sorted(choices), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""
