"""Insert jobs, run a worker process until they are done, and print their results.

Run from the repository root: python examples/quickstart/run.py
"""

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

from tasks import add, app, send_welcome, word_count

HERE = Path(__file__).resolve().parent


def main() -> int:
    # Shows gendurable's info lines, among them where the embedded server keeps its data.
    logging.basicConfig(level=logging.INFO, format="   log: %(message)s")
    print("1. migrate:", ", ".join(app.migrate()) or "schema is up to date")

    handles = {
        "add.delay(2, 3)": add.delay(2, 3),
        "send_welcome.delay(42, template='short')": send_welcome.delay(42, template="short"),
        "add.apply_async((10, 20), countdown=2)": add.apply_async((10, 20), countdown=2),
        "word_count.delay('durable work on PostgreSQL')": word_count.delay("durable work on PostgreSQL"),
    }
    bulk = app.insert_all([add.new(i, i) for i in range(1000)])
    print(f"2. inserted {len(handles) + len(bulk)} jobs (1000 of them in one insert_all)")

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    worker = subprocess.Popen(
        [sys.executable, "-m", "gendurable", "worker", "-A", "tasks:app",
         "--queues", "default=10,emails=4", "--log-level", "warning"],
        env=env,
    )
    print(f"3. started a worker process (pid {worker.pid})")
    try:
        print("4. results:")
        for call, handle in handles.items():
            print(f"   {call} -> {handle.result(timeout=60)!r}  [job {handle.id}: {handle.status()}]")
        total = sum(handle.result(timeout=60) for handle in bulk)
        print(f"   sum of the 1000 bulk results -> {total}")
    finally:
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=60)
    print(f"5. worker drained and exited with code {code}")
    app.close()
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
