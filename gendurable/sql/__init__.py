"""Named SQL queries, loaded from the ``.sql`` files beside this module.

Each query starts with ``-- name: <name>`` and a one-line comment saying what it is for.
Only the store (``gendurable._store``) and the migrator refer to query names.
"""

from __future__ import annotations

import functools
import re
from importlib import resources

_HEADER = re.compile(r"^-- name: (?P<name>[a-z_]+)\s*$", re.MULTILINE)


@functools.cache
def queries() -> dict[str, str]:
    """Return every named query of the package, keyed by name."""
    found: dict[str, str] = {}
    for entry in sorted(resources.files(__package__).iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".sql"):
            continue
        text = entry.read_text(encoding="utf-8")
        headers = list(_HEADER.finditer(text))
        for index, header in enumerate(headers):
            end = headers[index + 1].start() if index + 1 < len(headers) else len(text)
            name = header["name"]
            if name in found:
                raise RuntimeError(f"query {name!r} is defined twice (second in {entry.name})")
            found[name] = text[header.end() : end].strip().rstrip(";")
    return found


def query(name: str) -> str:
    """Return the text of one named query."""
    try:
        return queries()[name]
    except KeyError:
        raise KeyError(f"no query named {name!r} in gendurable/sql") from None
