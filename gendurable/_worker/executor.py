"""Where steps run: a pool of threads for plain functions and one event loop for ``async def``.

Both share the worker's per-queue limits, which the feeder enforces before submitting. A step
that runs past its ``timeout`` gets ``StepTimeout`` raised inside it: an async step is
cancelled at its next await; a sync step's thread receives the exception at its next Python
bytecode, so a step blocked inside one long C call (a socket read without a timeout) is only
interrupted when that call returns. Its attempt is recorded as failed at the deadline either
way, and its slot stays taken until the thread is free again.
"""

from __future__ import annotations

import asyncio
import collections
import ctypes
import heapq
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from .._store import OutcomeRecord
from ..errors import StepTimeout
from . import runner
from .runner import Attempt

logger = logging.getLogger("gendurable.worker")

Finished = Callable[[Attempt, OutcomeRecord | None], None]


class Executor:
    """Runs attempts and reports each one's record (None when it was abandoned) to ``finished``."""

    def __init__(self, threads: int, finished: Finished, name: str) -> None:
        self._finished = finished
        self._tasks = _TaskQueue()
        self._threads = [
            threading.Thread(target=self._thread_main, name=f"{name}-step-{n}", daemon=True)
            for n in range(threads)
        ]
        self._loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(
            target=self._loop_main, name=f"{name}-async", daemon=True
        )
        self._async_tasks: dict[int, asyncio.Task[Any]] = {}
        self._watchdog = _Watchdog(self)
        self._running: dict[int, tuple[Attempt, int | None]] = {}
        self._lock = threading.Lock()

    def start(self) -> None:
        for thread in self._threads:
            thread.start()
        self._loop_thread.start()
        self._watchdog.start()

    def submit(self, attempt: Attempt) -> None:
        definition = attempt.definition
        if definition is not None and definition.is_async(attempt.row.step):
            asyncio.run_coroutine_threadsafe(self._run_async(attempt), self._loop)
        else:
            self._tasks.put([attempt])

    def submit_many(self, attempts: list[Attempt]) -> None:
        """Submit a batch: sync steps wake step threads one after another, not all at once."""
        sync = []
        for attempt in attempts:
            definition = attempt.definition
            if definition is not None and definition.is_async(attempt.row.step):
                asyncio.run_coroutine_threadsafe(self._run_async(attempt), self._loop)
            else:
                sync.append(attempt)
        if sync:
            self._tasks.put(sync)

    def running_ids(self) -> list[int]:
        with self._lock:
            return list(self._running)

    def cancel(self, instance_id: int) -> None:
        """Tell a running step it was cancelled; an async one is cancelled outright."""
        with self._lock:
            entry = self._running.get(instance_id)
        if entry is None:
            return
        entry[0].ctx._cancel.set()
        task = self._async_tasks.get(instance_id)
        if task is not None:
            self._loop.call_soon_threadsafe(task.cancel)

    def abandon(self) -> list[Attempt]:
        """Stop reporting the attempts still running (a drain gave up on them); return them."""
        with self._lock:
            attempts = [attempt for attempt, _ in self._running.values()]
            for attempt in attempts:
                attempt.cancelled_by_worker = True
            return attempts

    def _loop_main(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_forever()
        finally:
            for task in asyncio.all_tasks(self._loop):
                task.cancel()
            self._loop.run_until_complete(asyncio.sleep(0))
            self._loop.close()

    def stop(self) -> None:
        self._tasks.close()
        self._watchdog.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._loop_thread.join(timeout=5)

    # Sync steps.

    def _thread_main(self) -> None:
        thread_id = threading.get_ident()
        while True:
            attempt = self._tasks.get()
            if attempt is None:
                return
            try:
                self._run_sync(attempt, thread_id)
            except StepTimeout as exc:
                # The timeout struck after the step returned, while it was being reported.
                with self._lock:
                    self._running.pop(attempt.row.id, None)
                if not attempt.reported:
                    self._report(attempt, None, exc)

    def _run_sync(self, attempt: Attempt, thread_id: int) -> None:
        with self._lock:
            self._running[attempt.row.id] = (attempt, thread_id)
        timeout = attempt.row.timeout
        if timeout is not None:
            self._watchdog.watch(attempt, timeout)
        returned: Any = None
        error: BaseException | None = None
        runner.start(attempt)
        try:
            returned = runner.run_sync(attempt)
        except BaseException as exc:
            error = exc
        finally:
            # Take the row out first, so a late timeout cannot strike the thread's next step.
            with self._lock:
                self._running.pop(attempt.row.id, None)
        self._report(attempt, returned, error)

    # Async steps.

    async def _run_async(self, attempt: Attempt) -> None:
        instance_id = attempt.row.id
        task = asyncio.current_task()
        assert task is not None
        with self._lock:
            self._running[instance_id] = (attempt, None)
        self._async_tasks[instance_id] = task
        returned: Any = None
        error: BaseException | None = None
        runner.start(attempt)
        try:
            timeout = attempt.row.timeout
            if timeout is None:
                returned = await runner.run_async(attempt)
            else:
                try:
                    returned = await asyncio.wait_for(runner.run_async(attempt), timeout)
                except TimeoutError:
                    error = StepTimeout(f"the attempt ran longer than its timeout of {timeout} s")
        except asyncio.CancelledError as exc:
            error = exc
        except Exception as exc:
            error = exc
        finally:
            self._async_tasks.pop(instance_id, None)
            with self._lock:
                self._running.pop(instance_id, None)
        self._report(attempt, returned, error)

    def _report(self, attempt: Attempt, returned: Any, error: BaseException | None) -> None:
        attempt.reported = True
        if attempt.cancelled_by_worker:
            self._finished(attempt, None)
            return
        try:
            record = runner.finish(attempt, returned, error)
        except Exception:
            logger.exception(
                "building the outcome of instance %s failed; its lease will expire "
                "and the reaper will run it again",
                attempt.row.id,
            )
            record = None
        self._finished(attempt, record)

    def timed_out(self, attempt: Attempt) -> None:
        """Raise StepTimeout inside the thread still running ``attempt``."""
        with self._lock:
            entry = self._running.get(attempt.row.id)
            if entry is None or entry[0] is not attempt or entry[1] is None:
                return
            thread_id = entry[1]
            # The C API takes an exception class, not an instance, so the message is added
            # when the error is recorded.
            ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(thread_id), ctypes.py_object(StepTimeout)
            )


class _TaskQueue:
    """The sync steps waiting for a thread.

    A put wakes one idle thread, and a thread that takes a step while more wait wakes the next
    one, unless a woken thread is already on its way. Waking one thread per step would cost a
    context switch each, which for short steps costs more than the steps themselves; with the
    chain, a thread that finishes quickly takes the next step itself, and a step that blocks
    still has the next thread take over.
    """

    def __init__(self) -> None:
        self._pending: collections.deque[Attempt] = collections.deque()
        self._cond = threading.Condition(threading.Lock())
        self._idle = 0
        self._waking = False
        self._closed = False

    def put(self, attempts: list[Attempt]) -> None:
        with self._cond:
            self._pending.extend(attempts)
            self._wake_one()

    def _wake_one(self) -> None:
        if self._idle and not self._waking and self._pending:
            self._waking = True
            self._cond.notify()

    def get(self) -> Attempt | None:
        """Return the next step, or None once closed."""
        with self._cond:
            while not self._pending and not self._closed:
                self._idle += 1
                self._cond.wait()
                self._idle -= 1
                self._waking = False
            if not self._pending:
                return None
            attempt = self._pending.popleft()
            self._wake_one()
            return attempt

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class _Watchdog(threading.Thread):
    """One thread that fires timeouts of sync steps, earliest deadline first."""

    def __init__(self, executor: Executor) -> None:
        super().__init__(name="gendurable-watchdog", daemon=True)
        self._executor = executor
        self._heap: list[tuple[float, int, Attempt]] = []
        self._wake = threading.Condition()
        self._stopped = False
        self._counter = 0

    def watch(self, attempt: Attempt, timeout: float) -> None:
        with self._wake:
            self._counter += 1
            heapq.heappush(self._heap, (time.monotonic() + timeout, self._counter, attempt))
            self._wake.notify()

    def stop(self) -> None:
        with self._wake:
            self._stopped = True
            self._wake.notify()

    def run(self) -> None:
        with self._wake:
            while not self._stopped:
                if not self._heap:
                    self._wake.wait()
                    continue
                deadline, _, attempt = self._heap[0]
                now = time.monotonic()
                if deadline > now:
                    self._wake.wait(deadline - now)
                    continue
                heapq.heappop(self._heap)
                self._executor.timed_out(attempt)
