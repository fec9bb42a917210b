"""Reads the platform's control-plane events during a run, for the live display and the report.

It is a plain observer: partitions are assigned (no consumer group, nothing committed) and read from
the end as they were when it started, so it sees exactly what the platform did during the run.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from llmfleet.run_data import ObservedEvent
from shared.events import (
    ALL_TOPICS,
    INFERENCE_REQUESTS,
    INFERENCE_RESULTS,
    AlertChanged,
    AlertState,
    ServerAllocated,
    ServerReleased,
    Topic,
)
from shared.kafka_security import KafkaSecurity, kafka_security_from_env

# Every control-plane topic; requests and results are the replay's own business.
OBSERVED_TOPICS: tuple[Topic, ...] = tuple(t for t in ALL_TOPICS if t not in (INFERENCE_REQUESTS, INFERENCE_RESULTS))


class EventRecorder:
    """Collects every event on the observed topics from `start()` on, stamped with the run's clock."""

    def __init__(
        self, bootstrap: str, topics: Sequence[Topic] = OBSERVED_TOPICS, security: KafkaSecurity | None = None
    ) -> None:
        """`security`: by default the CLI's (LLMFLEET_KAFKA_SECURITY_PROTOCOL etc.; PLAINTEXT when unset)."""
        self._topics = {t.name: t for t in topics}
        self._adapters = {t.name: t.adapter() for t in topics}
        options = (security or kafka_security_from_env()).client_options()
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=200, **options
        )
        self._reader: asyncio.Task[None] | None = None
        origin = time.monotonic()
        self._clock: Callable[[], float] = lambda: time.monotonic() - origin
        self.events: list[ObservedEvent] = []
        self.unreadable = 0
        self._servers: set[str] = set()
        self._firing: set[str] = set()
        self._listeners: list[Callable[[ObservedEvent], None]] = []

    def set_clock(self, clock: Callable[[], float]) -> None:
        """Stamp events on the replay's clock from now on; earlier ones are moved onto it too."""
        shift = clock() - self._clock()
        self.events = [ObservedEvent(e.at_s - shift, e.topic, e.event) for e in self.events]
        self._clock = clock

    def subscribe(self, listener: Callable[[ObservedEvent], None]) -> None:
        """Call `listener` with every event as it is read."""
        self._listeners.append(listener)

    async def start(self) -> None:
        """Assign every partition of the observed topics at its current end."""
        await self._consumer.start()
        await self._consumer._client.force_metadata_update()
        partitions = [
            TopicPartition(name, p)
            for name in self._topics
            for p in sorted(self._consumer.partitions_for_topic(name) or ())
        ]
        self._consumer.assign(partitions)
        # On a broker started seconds ago, a partition's new leader can refuse the first offset
        # request; aiokafka retries it but logs an error per partition. Not an error for a reader.
        fetcher_log = logging.getLogger("aiokafka.consumer.fetcher")
        level = fetcher_log.level
        fetcher_log.setLevel(logging.CRITICAL)
        try:
            await self._consumer.seek_to_end(*partitions)
            for tp in partitions:
                await self._consumer.position(tp)
        finally:
            fetcher_log.setLevel(level)
        self._reader = asyncio.create_task(self._read())

    async def stop(self) -> None:
        if self._reader:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        await self._consumer.stop()

    async def wait_for(self, match: Callable[[Any], bool], timeout: float) -> Any | None:
        """The first event (seen so far or arriving within `timeout`) that `match`es, else None."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for observed in self.events[seen:]:
                if match(observed.event):
                    return observed.event
            seen = len(self.events)
            if time.monotonic() >= deadline:
                return None
            await asyncio.sleep(0.2)

    def live_servers(self) -> int:
        return len(self._servers)

    def alerts_firing(self) -> int:
        return len(self._firing)

    async def _read(self) -> None:
        async for record in self._consumer:
            try:
                event = self._adapters[record.topic].validate_json(record.value or b"")
            except ValidationError:
                self.unreadable += 1  # the platform dead-letters it; the report counts it
                continue
            observed = ObservedEvent(self._clock(), record.topic, event)
            self.events.append(observed)
            self._track(event)
            for listener in self._listeners:
                listener(observed)

    def _track(self, event: Any) -> None:
        if isinstance(event, ServerAllocated):
            self._servers.add(event.server_id)
        elif isinstance(event, ServerReleased):
            self._servers.discard(event.server_id)
        elif isinstance(event, AlertChanged):
            if event.state == AlertState.FIRING:
                self._firing.add(event.alert_id)
            else:
                self._firing.discard(event.alert_id)
