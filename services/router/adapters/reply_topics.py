"""Whether a request's reply topic exists, asked once (bounded) and remembered for a while.

aiokafka's `send` to a missing topic waits for its metadata for the whole request timeout (40 s)
and then fails; on the hot path that would stall a batch. Only batch and rejection tasks ask,
never the consume loop, and the cache is bounded (reply topics come from producers).
"""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError


class ReplyTopics:
    """A cache of reply-topic existence; a missing topic is asked about again after `retry_s`."""

    def __init__(self, timeout_s: float = 2.0, retry_s: float = 60.0, max_entries: int = 10_000) -> None:
        self._timeout_s = timeout_s
        self._max_entries = max_entries
        self._retry_s = retry_s
        self._known: set[str] = set()
        self._missing_until: dict[str, float] = {}

    async def exists(self, producer: AIOKafkaProducer, topic: str) -> bool:
        """True when the topic has partitions (cheap once known)."""
        if topic in self._known:
            return True
        if self._missing_until.get(topic, 0.0) > time.monotonic():
            return False
        try:
            partitions = await asyncio.wait_for(producer.partitions_for(topic), self._timeout_s)
        except (TimeoutError, KafkaError):
            partitions = None
        if len(self._known) + len(self._missing_until) >= self._max_entries:  # bounded: forget, ask again
            self._known.clear()
            self._missing_until.clear()
        if partitions:
            self._known.add(topic)
            return True
        self._missing_until[topic] = time.monotonic() + self._retry_s
        return False
