"""Supervised background jobs: periodic rounds (`every`) and long loops, started and stopped as one set.

A service declares its jobs (`periodic(...)`, `loop(...)`); `Jobs` runs them. A round that fails
is logged and tried again next round. A job that *dies* (raises out of its coroutine, or returns
while the set is not stopping) is a bug or a lost resource: it is reported to `on_failure`, which
by default logs the traceback and ends the process with exit code 70, so its supervisor restarts
it. No job dies silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

OnFailure = Callable[[str, BaseException], None]
EXIT_CODE = 70  # EX_SOFTWARE: an internal error, not a bad configuration


def exit_loudly(name: str, error: BaseException) -> None:
    """A job died: log its traceback and end the process now (uncommitted work comes again)."""
    log.critical("job %r died; exiting so the supervisor restarts the service", name, exc_info=error)
    logging.shutdown()
    os._exit(EXIT_CODE)


def _should_warn(failures: int) -> bool:
    # An outage fails every round: log the first few, then now and then, not one line per round.
    return failures in (1, 10) or failures % 200 == 0


async def every(
    interval_s: float,
    work: Callable[[], Awaitable[object]],
    name: str,
    *,
    immediately: bool = False,
    stopping: asyncio.Event | None = None,
) -> None:
    """Run `work` every `interval_s` (start to start) until cancelled or `stopping` is set; a failed round retries."""
    failures = 0
    stopping = stopping or asyncio.Event()
    delay = 0.0 if immediately else interval_s
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), delay)
        if stopping.is_set():
            return
        started = time.monotonic()
        try:
            await work()
        except Exception as error:  # a round must never end its job; the next round tries again
            failures += 1
            if _should_warn(failures):
                log.warning("%s failed (%d in a row)", name, failures, exc_info=error if failures == 1 else None)
        else:
            if failures:
                log.info("%s works again after %d failed rounds", name, failures)
            failures = 0
        elapsed = time.monotonic() - started
        if elapsed > interval_s:
            log.warning("%s took %.2f s, longer than its %.2f s interval", name, elapsed, interval_s)
        delay = max(0.0, interval_s - elapsed)


@dataclass(frozen=True)
class Job:
    """A named background job; `run(stopping)` makes its coroutine. Graceful jobs finish their round on stop."""

    name: str
    run: Callable[[asyncio.Event], Coroutine[Any, Any, None]]
    graceful: bool = False


def periodic(name: str, interval_s: float, work: Callable[[], Awaitable[object]], immediately: bool = False) -> Job:
    """A job running `work` every `interval_s`; on stop a round in progress completes (it may hold locks)."""

    def run(stopping: asyncio.Event) -> Coroutine[Any, Any, None]:
        return every(interval_s, work, name, immediately=immediately, stopping=stopping)

    return Job(name, run, graceful=True)


def loop(name: str, run: Callable[[], Coroutine[Any, Any, None]]) -> Job:
    """A job that is one long coroutine (an outbox relay, a consumer); on stop it is cancelled."""
    return Job(name, lambda _stopping: run())


class Jobs:
    """The supervised jobs of one process: a death is reported to `on_failure`; `stop()` ends them all."""

    def __init__(self, on_failure: OnFailure = exit_loudly) -> None:
        self.on_failure = on_failure
        self.stopping = asyncio.Event()
        self._tasks: dict[asyncio.Task[None], Job] = {}

    @property
    def names(self) -> list[str]:
        """Names of the jobs running now."""
        return [job.name for task, job in self._tasks.items() if not task.done()]

    def start(self, *jobs: Job) -> None:
        """Start each job as a supervised task."""
        self.stopping.clear()
        for job in jobs:
            task = asyncio.create_task(job.run(self.stopping), name=job.name)
            task.add_done_callback(self._ended)
            self._tasks[task] = job

    def _ended(self, task: asyncio.Task[None]) -> None:
        if self.stopping.is_set() or task.cancelled():
            return
        error = task.exception() or RuntimeError(f"job {task.get_name()!r} returned while the service runs")
        self.on_failure(task.get_name(), error)

    async def stop(self, grace_s: float = 30.0) -> None:
        """Cancel the loops; let graceful jobs finish their round (up to `grace_s`), then cancel them too."""
        self.stopping.set()
        tasks = dict(self._tasks)
        self._tasks.clear()
        for task, job in tasks.items():
            if not job.graceful:
                task.cancel()
        graceful = [task for task, job in tasks.items() if job.graceful]
        if graceful:
            _done, late = await asyncio.wait(graceful, timeout=grace_s)
            for task in late:
                task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for job, result in zip(tasks.values(), results, strict=True):
            if isinstance(result, Exception):
                log.warning("job %s ended with %r while stopping", job.name, result)
