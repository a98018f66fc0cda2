"""Name to definition resolution for workers, safe against rows written by someone else.

A worker resolves the ``fsm`` column of each row it picks. Names registered in this process
resolve at once. Otherwise the module part of the name is imported, but only when it lies
inside one of the app's ``include`` packages, and the result must be a ``@durable_job`` or an
``FSM`` subclass; anything else is an unknown job and nothing of it is run.
"""

from __future__ import annotations

import importlib
import logging
import threading

from ._definition import Definition
from .errors import UnknownJob, closest

logger = logging.getLogger("gendurable")

_lock = threading.Lock()
_definitions: dict[str, Definition] = {}


def register(definition: Definition) -> None:
    """Record a definition under its name; a second one with that name replaces the first."""
    with _lock:
        earlier = _definitions.get(definition.name)
        if earlier is not None and _origin(earlier) != _origin(definition):
            logger.warning(
                "%s is defined twice (%s and %s); rows of that name now run the second. Give "
                "one of them another name=",
                definition.name,
                _origin(earlier),
                _origin(definition),
            )
        _definitions[definition.name] = definition


def _origin(definition: Definition) -> str:
    """Name where a definition's code lives, so that re-importing one module is no clash."""
    code = getattr(definition, "function", None) or getattr(definition, "cls", None)
    return f"{getattr(code, '__module__', '?')}.{getattr(code, '__qualname__', '?')}"


def registered() -> dict[str, Definition]:
    return dict(_definitions)


def known_queues() -> set[str]:
    return {definition.queue for definition in _definitions.values()}


def resolve(name: str, include: tuple[str, ...]) -> Definition:
    """Return the definition named ``name``, importing its module if ``include`` allows it."""
    found = _definitions.get(name)
    if found is not None:
        return found
    module = _importable_module(name, include)
    if module is None:
        raise UnknownJob(
            f"unknown job or FSM {name!r}: it is not registered in this worker and its module is "
            f"outside the packages the app includes ({', '.join(include) or 'none'}); import it "
            "in the app module or add its package to App(include=[...])"
            + closest(name, list(_definitions))
        )
    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise UnknownJob(
            f"unknown job or FSM {name!r}: importing {module!r} failed: {exc}"
        ) from exc
    found = _definitions.get(name)
    if found is None:
        raise UnknownJob(
            f"unknown job or FSM {name!r}: module {module!r} was imported but defines no "
            "@durable_job or FSM with that name" + closest(name, list(_definitions))
        )
    return found


def _importable_module(name: str, include: tuple[str, ...]) -> str | None:
    parts = name.split(".")
    # The longest dotted prefix that lies in an included package is the module to import.
    for end in range(len(parts) - 1, 0, -1):
        module = ".".join(parts[:end])
        if any(module == package or module.startswith(package + ".") for package in include):
            return module
    return None
