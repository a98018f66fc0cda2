"""The gendurable app that the benchmark's workers load with `-A bench.gendurable_app:app`."""

from __future__ import annotations

import os

from gendurable import App

from bench.systems._common import report_probe_start

# Without a URL, App would start an embedded server, but the benchmark must
# use the PostgreSQL server that bench/run.py prepared.
if not os.environ.get("GENDURABLE_DATABASE_URL"):
    raise RuntimeError(
        "GENDURABLE_DATABASE_URL is not set; run the benchmark through bench/run.py"
    )

app = App()


@app.durable_job
def noop(i: int) -> None:
    return None


@app.durable_job
def probe(probe_id: int) -> None:
    report_probe_start(probe_id)
