"""The schema's CHECK constraints, and the named SQL queries against a migrated database."""

from __future__ import annotations

import re
from pathlib import Path

import psycopg
import pytest

import gendurable
from gendurable.sql import queries

PACKAGE = Path(gendurable.__file__).parent
PLACEHOLDER = re.compile(r"%\((\w+)\)s")
# A name passed to query(), or to Store._execute(), which looks it up.
QUERY_REFERENCE = re.compile(r"""(?:\bquery|\._execute)\(\s*["']([a-z_]+)["']""")


@pytest.mark.parametrize(
    ("columns", "constraint"),
    [
        ("status = 'done'", "gen_durable_finished_iff_terminal"),
        ("status = 'failed'", "gen_durable_finished_iff_terminal"),
        ("finished_at = now()", "gen_durable_finished_iff_terminal"),
        ("status = 'running'", "gen_durable_lease_iff_running"),
        ("status = 'running', lease_owner = 'w'", "gen_durable_lease_iff_running"),
        ("lease_owner = 'w', lease_expires_at = now()", "gen_durable_lease_iff_running"),
        ("priority = 10", "gen_durable_priority_range"),
        ("priority = -1", "gen_durable_priority_range"),
        ("weight = 0", "gen_durable_weight_positive"),
        ("max_attempts = 0", "gen_durable_attempts_positive"),
        ("attempt = -1", "gen_durable_attempts_positive"),
        ("timeout = 0", "gen_durable_timeout_positive"),
        ("queue = ''", "gen_durable_names_not_empty"),
    ],
)
def test_check_constraint_rejects(db, columns, constraint):
    db.execute("INSERT INTO gen_durable (fsm, step) VALUES ('schema.job', 'perform')")

    with pytest.raises(psycopg.errors.CheckViolation) as caught:
        db.execute(f"UPDATE gen_durable SET {columns}")

    assert caught.value.diag.constraint_name == constraint


def test_valid_terminal_row_accepted(db):
    db.execute(
        "INSERT INTO gen_durable (fsm, step, status, finished_at) "
        "VALUES ('schema.job', 'perform', 'done', now())"
    )


def test_valid_running_row_accepted(db):
    db.execute(
        "INSERT INTO gen_durable (fsm, step, status, lease_owner, lease_expires_at) "
        "VALUES ('schema.job', 'perform', 'running', 'w', now())"
    )


@pytest.mark.parametrize("name", sorted(queries()))
def test_query_passes_explain(db, name):
    text = queries()[name]
    # Each parameter is an untyped NULL, so the server infers its type from the query, and a
    # query whose types it cannot infer or match fails here.
    params = dict.fromkeys(PLACEHOLDER.findall(text))

    db.execute("EXPLAIN " + text, params)


def test_query_has_comment():
    for name in queries():
        source = next(
            path.read_text() for path in (PACKAGE / "sql").glob("*.sql")
            if f"-- name: {name}\n" in path.read_text()
        )
        after_header = source.split(f"-- name: {name}\n", 1)[1]
        assert after_header.startswith("-- "), f"query {name} has no comment line"


def test_referenced_queries_exist():
    referenced = {
        (path.relative_to(PACKAGE).as_posix(), name)
        for path in PACKAGE.rglob("*.py")
        for name in QUERY_REFERENCE.findall(path.read_text())
    }

    assert referenced, "found no query references; the pattern no longer matches the code"
    missing = sorted(f"{path}: {name}" for path, name in referenced if name not in queries())
    assert missing == []
