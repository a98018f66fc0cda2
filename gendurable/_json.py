"""Checks that a value reaches a ``jsonb`` column unchanged.

JSON has no NaN or infinity (pydantic turns NaN into null in a field typed ``Any``, and
PostgreSQL rejects the ``Infinity`` token), and PostgreSQL cannot store the NUL character in
``jsonb`` or ``text``. Such values are rejected where they enter, with the path to them.
"""

from __future__ import annotations

import math
from typing import Any


def unstorable(value: Any, where: str = "value") -> str | None:
    """Describe the first part of ``value`` that ``jsonb`` cannot store, or return None.

    Walks dicts, lists, tuples and sets, and leaves other objects to the JSON serialiser.
    """
    pending: list[tuple[Any, str]] = [(value, where)]
    while pending:
        item, path = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return f"{path} is {item!r}, which contains a NUL character PostgreSQL cannot store"
        elif isinstance(item, float):
            if not math.isfinite(item):
                return f"{path} is {item!r}, which JSON cannot represent"
        elif isinstance(item, dict):
            for key, child in reversed(list(item.items())):
                if isinstance(key, str) and "\x00" in key:
                    return (
                        f"{path} has the key {key!r}, which contains a NUL character "
                        "PostgreSQL cannot store"
                    )
                pending.append((child, f"{path}[{key!r}]"))
        elif isinstance(item, list | tuple | set | frozenset):
            for index, child in reversed(list(enumerate(item))):
                pending.append((child, f"{path}[{index}]"))
    return None


def without_nul(text: str) -> str:
    """Return ``text`` with each NUL character written as the escape ``\\x00``."""
    return text.replace("\x00", "\\x00")
