"""The pytest plugin's clean tables per test include the schedule tables."""

from __future__ import annotations

import psycopg

from gendurable.testing import truncate


def test_truncate_empties_schedule_tables(gendurable_database_url):
    # Schedules and ticks left by an earlier test would count intervals from its registration
    # and shift the first tick of the next test's schedule of the same name.
    with psycopg.connect(gendurable_database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO gen_durable_schedules (name, spec, registered_at) "
            "VALUES ('left-over', 'every 60 s', now())"
        )
        conn.execute("INSERT INTO gen_durable_ticks (schedule, tick) VALUES ('left-over', now())")

        truncate(gendurable_database_url)

        schedules = conn.execute("SELECT count(*) FROM gen_durable_schedules").fetchone()[0]
        ticks = conn.execute("SELECT count(*) FROM gen_durable_ticks").fetchone()[0]
        conn.execute("TRUNCATE gen_durable_schedules, gen_durable_ticks")
    assert schedules == 0
    assert ticks == 0
