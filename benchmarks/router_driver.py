"""The benchmark's client side: sends requests to the private topic and timestamps their results."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from shared.events import InferenceRequested


def percentiles(values: list[float]) -> tuple[float, float]:
    """p50 and p99 (nearest rank), rounded to 0.01 ms."""
    ordered = sorted(values)

    def pick(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

    return pick(0.50), pick(0.99)


class Driver:
    """Producer of requests and reader of results, with send and receive times per request id."""

    def __init__(self, bootstrap: str, requests_topic: str, results_topic: str) -> None:
        self.requests_topic, self.results_topic = requests_topic, results_topic
        self._producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2)
        self._consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        self.sent: dict[str, float] = {}
        self.received: dict[str, float] = {}
        self.results: dict[str, dict[str, Any]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Driver:
        await self._producer.start()
        await self._consumer.start()
        partitions = [TopicPartition(self.results_topic, p) for p in range(8)]
        self._consumer.assign(partitions)
        await self._consumer.seek_to_beginning(*partitions)
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._reader:
            self._reader.cancel()
        await self._producer.stop()
        await self._consumer.stop()

    async def _read(self) -> None:
        while True:
            for records in (await self._consumer.getmany(timeout_ms=100)).values():
                now = time.perf_counter()
                for record in records:
                    value = json.loads(record.value)
                    self.received.setdefault(value["request_id"], now)
                    self.results.setdefault(value["request_id"], value)

    def _payload(self, model: str, request_id: str, max_tokens: int) -> bytes:
        return (
            InferenceRequested(
                source="bench",
                request_id=request_id,
                model_id=model,
                prompt=f"benchmark prompt {request_id}: the fleet",
                max_tokens=max_tokens,
                reply_topic=self.results_topic,
            )
            .model_dump_json()
            .encode()
        )

    async def _send(self, request_id: str, payload: bytes) -> None:
        self.sent[request_id] = time.perf_counter()
        await self._producer.send(self.requests_topic, payload, key=request_id.encode())

    async def burst(self, model: str, count: int, max_tokens: int) -> list[str]:
        """Send `count` requests as fast as the producer takes them (payloads built first)."""
        tag = uuid.uuid4().hex[:6]
        payloads = [(f"{tag}-{i}", self._payload(model, f"{tag}-{i}", max_tokens)) for i in range(count)]
        for request_id, payload in payloads:
            await self._send(request_id, payload)
        await self._producer.flush()
        return [request_id for request_id, _ in payloads]

    async def paced(self, model: str, rate: int, seconds: float, max_tokens: int) -> list[str]:
        """Send at `rate` per second in 10 ms ticks for `seconds`."""
        tag, ids, per_tick = uuid.uuid4().hex[:6], [], max(1, rate // 100)
        started = time.perf_counter()
        for tick in range(int(seconds * 100)):
            for i in range(per_tick):
                request_id = f"{tag}-{tick}-{i}"
                await self._send(request_id, self._payload(model, request_id, max_tokens))
                ids.append(request_id)
            await asyncio.sleep(max(0.0, started + (tick + 1) / 100 - time.perf_counter()))
        return ids

    async def wait(self, ids: list[str], timeout: float) -> dict[str, dict[str, Any]]:
        """The results of `ids` that arrived within `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not all(i in self.results for i in ids):  # noqa: ASYNC110 - polls a dict the reader fills
            await asyncio.sleep(0.05)
        return {i: self.results[i] for i in ids if i in self.results}

    async def warm_up(self, timeout: float = 60.0) -> None:
        """Until the router answers (it has started and owns the partitions)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ids = await self.burst("echo", 16, max_tokens=4)
            if len(await self.wait(ids, timeout=3)) == len(ids):
                return
        raise TimeoutError("the router did not answer")
