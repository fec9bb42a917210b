"""The router's server registry, rebuilt from the allocation topic at every start and then followed live.

The topic is the source of truth, so serving never needs PostgreSQL:

- Memory: a reader without a consumer group takes every partition from its beginning, applies
  each event to the in-memory registry (idempotent), and keeps following. `wait_caught_up`
  lets the hot path start only once the end offsets seen at start are reached (bounded).
- Tables (write-behind): a second reader of the same topic persists the changes with
  `service.record_allocations` and the inbox. When the database does not answer, that reader
  simply stops where it is and retries with backoff: Kafka holds the pending writes, so there
  is no queue in memory to bound or to lose, and it catches up by itself when the database is
  back. The inbox key is the same for every replica and restart, so each event is written once.
  The tables are a copy for people and tools; the router never reads them to serve.

Each reader runs in a supervised task: an unexpected exception is logged with its traceback
and handed to `on_task_failed`, which ends the process by default (a router whose registry
stopped following would route to released servers and never learn new ones).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.router.adapters.allocation_feed import AllocationFeed, Fed
from services.router.use_cases import allocations as service
from shared.events import Event
from shared.jobs import exit_loudly
from shared.kafka_security import PLAINTEXT, KafkaSecurity

log = logging.getLogger(__name__)

OnTaskFailed = Callable[[BaseException], None]
Apply = Callable[[Fed], Awaitable[None]]

# One inbox key for all replicas: they share the tables, so whichever writes an event first wins.
INBOX_CONSUMER = "router.on_allocation_changed"


def exit_on_task_failure(error: BaseException) -> None:
    """Default `on_task_failed`: log the traceback and end the process (70), so it is restarted."""
    exit_loudly("router", error)


def supervise(task: asyncio.Task[None], on_task_failed: OnTaskFailed) -> asyncio.Task[None]:
    """Report the task's death to `on_task_failed` unless it was cancelled."""

    def done(finished: asyncio.Task[None]) -> None:
        if finished.cancelled():
            return
        error = finished.exception() or RuntimeError(f"task {finished.get_name()} returned; it should run forever")
        log.error("background task %s died", finished.get_name(), exc_info=error)
        on_task_failed(error)

    task.add_done_callback(done)
    return task


class RegistryFollower:
    """Replays and follows the allocation topic into memory, and writes the changes behind to the tables."""

    def __init__(
        self,
        bootstrap: str,
        client_id: str,
        apply: Apply,
        sessions: async_sessionmaker[AsyncSession],
        on_task_failed: OnTaskFailed = exit_on_task_failure,
        backoff_max_s: float = 30.0,
        security: KafkaSecurity = PLAINTEXT,
    ) -> None:
        self.caught_up = asyncio.Event()
        self.persisted = 0  # events this process has seen committed to the tables (by it or a peer)
        self._memory = AllocationFeed(bootstrap, f"{client_id}-registry", security=security)
        self._tables = AllocationFeed(bootstrap, f"{client_id}-registry-db", security=security)
        self._apply = apply
        self._sessions = sessions
        self._on_task_failed = on_task_failed
        self._backoff_max_s = backoff_max_s
        self._tasks: list[asyncio.Task[None]] = []
        self._started = 0.0
        self._replayed = 0
        self._running = False

    async def start(self) -> None:
        """Connect both readers and start following."""
        self._started = time.monotonic()
        await self._memory.start()
        try:
            await self._tables.start()
        except BaseException:
            await self._memory.stop()
            raise
        self._running = True
        self._tasks = [
            supervise(asyncio.create_task(self._follow(), name="registry-follow"), self._on_task_failed),
            supervise(asyncio.create_task(self._persist(), name="registry-persist"), self._on_task_failed),
        ]

    async def wait_caught_up(self, timeout_s: float) -> bool:
        """Wait until the registry holds every event that was in the topic at start; False after `timeout_s`."""
        try:
            await asyncio.wait_for(self.caught_up.wait(), timeout_s)
        except TimeoutError:
            log.warning(
                "allocation replay not caught up after %.1f s (%s events applied); serving with the registry so far",
                timeout_s,
                self._replayed,
            )
            return False
        return True

    async def stop(self) -> None:
        """Stop following and disconnect; unpersisted changes are written by the next process."""
        if not self._running:
            return
        self._running = False
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await self._memory.stop()
        await self._tables.stop()

    async def _follow(self) -> None:
        """Apply every event to memory, in order, forever; note when the start's end is reached."""
        while True:
            if not self.caught_up.is_set() and await self._memory.replayed_all():
                log.info(
                    "allocation replay caught up: %s events in %.2f s",
                    self._replayed,
                    time.monotonic() - self._started,
                )
                self.caught_up.set()
            for fed in await self._memory.next_batch():
                await self._apply(fed)
                self._replayed += fed.replayed

    async def _persist(self) -> None:
        """Write every event to the tables, in order; wait (with backoff) while the database does not answer."""
        while True:
            events = [fed.event for fed in await self._tables.next_batch()]
            if events:
                await self._write(events)

    async def _write(self, events: list[Event]) -> None:
        """Write one batch, retrying until it is in (the inbox makes a retry of a half-seen batch harmless)."""
        pause = min(0.5, self._backoff_max_s)
        while True:
            try:
                await service.record_allocations(self._sessions, INBOX_CONSUMER, events)
                self.persisted += len(events)
                return
            except Exception as error:  # any database failure: the copy waits, serving goes on
                log.warning("registry tables not updated (retry in %.1f s): %r", pause, error)
                await asyncio.sleep(pause)
                pause = min(pause * 2, self._backoff_max_s)
