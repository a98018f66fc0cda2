"""Call the moved tasks as the Celery project did, run a worker, print the results.

Run from the repository root: python examples/celery_compat/after/run.py
"""

import os
import signal
import subprocess
import sys
from pathlib import Path

from tasks import app, nightly_report, send_welcome

HERE = Path(__file__).resolve().parent


def main() -> int:
    app.migrate()
    welcome = send_welcome.delay(42, template="short")
    report = nightly_report.apply_async(countdown=1)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    worker = subprocess.Popen(
        [sys.executable, "-m", "gendurable", "worker", "-A", "tasks:app",
         "--queues", "default=4,emails=4", "--log-level", "warning"],
        env=env,
    )
    try:
        print("send_welcome.delay(42, template='short') ->", welcome.get(timeout=60))
        print("nightly_report.apply_async(countdown=1) ->", report.get(timeout=60))
    finally:
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=60)
    app.close()
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
