"""Background loops of the monitor (scrape rounds, lag checks, retention, outbox relay)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)


async def every(interval_s: float, action: Callable[[], Awaitable[object]], name: str) -> None:
    """Run `action` every `interval_s` (start to start) until cancelled; a failed run is logged, not fatal."""
    while True:
        started = time.monotonic()
        try:
            await action()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s failed; trying again next round", name)
        elapsed = time.monotonic() - started
        if elapsed > interval_s:
            log.warning("%s took %.2f s, longer than its %.2f s interval", name, elapsed, interval_s)
        await asyncio.sleep(max(0.0, interval_s - elapsed))


class Background:
    """The tasks a running monitor owns; started after the broker, cancelled before it closes."""

    def __init__(self) -> None:
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, *loops: Coroutine[Any, Any, None]) -> None:
        """Start each loop as a task."""
        self._tasks.extend(asyncio.create_task(loop) for loop in loops)

    async def stop(self) -> None:
        """Cancel every task and wait for them to finish."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
