"""Start three orders, run a worker process, ship two and cancel one, print how each ended.

Run from the repository root: python examples/orders/run.py
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from workflow import Order, app

from gendurable.errors import InstanceFailed

HERE = Path(__file__).resolve().parent


def wait_for(handle, status: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while handle.status() != status:
        if time.monotonic() > deadline:
            raise TimeoutError(f"order {handle.id} did not reach {status}")
        time.sleep(0.05)


def main() -> int:
    app.migrate()
    orders = {
        1: Order.start(Order.State(order_id=1, items=["mug", "tea"]), correlation_key="order-1"),
        2: Order.start(Order.State(order_id=2, items=["lamp"]), correlation_key="order-2"),
        3: Order.start(Order.State(order_id=3, items=["desk", "chair", "pen"]),
                       correlation_key="order-3"),
    }
    again = Order.start(Order.State(order_id=1, items=["mug", "tea"]), correlation_key="order-1")
    print(f"1. started 3 orders; starting order-1 again returned the same instance: "
          f"id {again.id}, inserted={again.inserted}")

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    worker = subprocess.Popen(
        [sys.executable, "-m", "gendurable", "worker", "-A", "workflow:app",
         "--queues", "orders=5,warehouse=10", "--log-level", "warning"],
        env=env,
    )
    try:
        for handle in orders.values():
            wait_for(handle, "awaiting")
        print("2. all three charged and awaiting shipment or cancellation")
        app.signal(Order, "order-1", "shipped", {"carrier": "UPS"})
        app.signal(Order, "order-2", "cancelled")
        app.signal(Order, "order-3", "shipped", {"carrier": "DHL"})
        print("3. sent: order-1 shipped, order-2 cancelled, order-3 shipped")
        print("4. outcomes:")
        for number, handle in orders.items():
            try:
                print(f"   order-{number}: done {handle.result(timeout=30)}")
            except InstanceFailed as exc:
                print(f"   order-{number}: failed ({exc.last_error['error']})")
    finally:
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=60)
    app.close()
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
