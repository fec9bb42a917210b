"""The client side: a plain producer of requests and poison, a reader of every result, and their ledger."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from benchmarks.chaos import poison
from benchmarks.chaos.tally import OVERLOAD, STEADY, Result, Sent
from shared.events import ALLOCATIONS, DEADLETTER, INFERENCE_RESULTS, PRICES, SCALING_ACTIONS

log = logging.getLogger(__name__)
REPLY_PARTITIONS = 2
CONTROL_TOPICS = (SCALING_ACTIONS.name, PRICES.name)  # the allocator's: their dead letters are the control path's


class Ledger:
    """What was sent, acknowledged and answered; which results are still owed (and since when)."""

    def __init__(self) -> None:
        self.attempted: dict[str, Sent] = {}
        self.acked: dict[str, Sent] = {}
        self.unreadable: list[Sent] = []
        self.owed: dict[str, float] = {}
        self.answered: set[str] = set()
        self.results: list[Result] = []
        self.dead_letters: set[tuple[int, int]] = set()
        self.control_dead_letters: set[tuple[str, int, int]] = set()  # (source topic, partition, offset)
        self.send_failed = 0
        self.unparsable_results = 0

    def on_ack(self, sent: Sent, metadata: Any) -> None:
        """The broker acknowledged a record: its result is owed from now."""
        if not sent.answerable:
            self.unreadable.append(Sent(sent.request_id, sent.kind, False, False, metadata.partition, metadata.offset))
            return
        self.attempted.pop(sent.request_id, None)
        self.acked[sent.request_id] = sent
        if sent.request_id not in self.answered:
            self.owed[sent.request_id] = time.monotonic()

    def on_result(self, result: Result) -> None:
        """A result arrived (on any topic)."""
        self.results.append(result)
        self.answered.add(result.request_id)
        self.owed.pop(result.request_id, None)

    def owed_since(self, before: float) -> int:
        """Results owed for records acknowledged before `before` (monotonic)."""
        return sum(1 for at in self.owed.values() if at < before)

    def sent(self) -> list[Sent]:
        """Every record known to be in the topic: acknowledged, or unacknowledged but answered."""
        late = [s for rid, s in self.attempted.items() if rid in self.answered]
        return [*self.acked.values(), *late, *self.unreadable]


class Driver:
    """Sends requests at a steady rate, poison bundles and overload bursts; pauses while Kafka is down."""

    def __init__(self, bootstrap: str, ledger: Ledger, rng: random.Random) -> None:
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            enable_idempotence=True,  # a retried send must not become a second request record
            linger_ms=5,
            request_timeout_ms=30_000,
            max_request_size=1_048_576,
        )
        self.ledger, self._rng = ledger, rng
        self.open = asyncio.Event()  # cleared while the harness holds Kafka down
        self.open.set()
        self._seq = 0

    async def start(self) -> None:
        """Connect the producer."""
        await self._producer.start()

    async def stop(self) -> None:
        """Flush and close the producer (bounded: Kafka may be gone)."""
        try:
            await asyncio.wait_for(self._producer.stop(), 30)
        except (TimeoutError, Exception) as error:  # teardown goes on regardless
            log.warning("producer stop: %r", error)

    async def send(self, record: poison.Record) -> None:
        """Send one record; the ledger learns of it when the broker acknowledges it."""
        await self.open.wait()
        sent = Sent(record.request_id or "", record.kind, record.request_id is not None, record.has_deadline)
        if sent.answerable:
            self.ledger.attempted[sent.request_id] = sent
        key = record.request_id.encode() if record.request_id else None
        try:
            delivery = await self._producer.send(poison.REQUESTS_TOPIC, record.value, key=key)
        except Exception as error:  # counted; the run goes on
            self.ledger.send_failed += 1
            log.warning("send failed: %r", error)
            return
        delivery.add_done_callback(lambda f: self._delivered(sent, f))

    def _delivered(self, sent: Sent, future: asyncio.Future[Any]) -> None:
        if future.cancelled() or future.exception() is not None:
            self.ledger.send_failed += 1
            return
        self.ledger.on_ack(sent, future.result())

    async def steady(self, rate: float, stop: asyncio.Event) -> None:
        """Requests at `rate` per second (mostly echo, a fifth tinylm) until `stop`; no catch-up after a pause."""
        tick, per_tick = 0.02, rate * 0.02
        credit, last = 0.0, time.monotonic()
        while not stop.is_set():
            if not self.open.is_set():
                await asyncio.sleep(0.1)
                last = time.monotonic()
                continue
            now = time.monotonic()
            credit = min(credit + (now - last) / tick * per_tick, rate)  # at most a second's worth
            last = now
            while credit >= 1 and self.open.is_set():
                credit -= 1
                await self.send(self._steady_record())
            await asyncio.sleep(tick)

    def _steady_record(self) -> poison.Record:
        self._seq += 1
        rid = f"s-{self._seq:06d}"
        model, tokens = ("tinylm", self._rng.randint(4, 12)) if self._rng.random() < 0.2 else ("echo", 8)
        body = poison.request(rid, model, f"chaos request {rid}: the fleet", tokens, poison.now_utc())
        return poison.Record(rid, STEADY, poison.encode(body))

    async def poison_bundle(self, tag: str) -> int:
        """Send one bundle of poison records; return how many."""
        records = poison.bundle(tag, poison.now_utc(), self._rng)
        for record in records:
            await self.send(record)
        await self._producer.flush()
        return len(records)

    async def overload(self, tag: str, count: int, models: int, prompt_bytes: int) -> float:
        """`count` requests across `models` model ids with large prompts, as fast as possible; return seconds."""
        started = time.monotonic()
        prompt = poison.overload_prompt(prompt_bytes)
        for i in range(count):
            rid = f"{tag}-{i:05d}"
            body = poison.request(rid, f"chaos-m{i % models:03d}", prompt, 4, poison.now_utc())
            await self.send(poison.Record(rid, OVERLOAD, poison.encode(body)))
        await self._producer.flush()
        return time.monotonic() - started


def watched_partitions() -> list[TopicPartition]:
    """Results, reply topics, the forbidden allocations topic (leaks) and the dead-letter topic."""
    topics = [(INFERENCE_RESULTS.name, INFERENCE_RESULTS.partitions), (ALLOCATIONS.name, ALLOCATIONS.partitions)]
    topics += [(DEADLETTER.name, DEADLETTER.partitions)] + [(t, REPLY_PARTITIONS) for t in poison.REPLY_TOPICS]
    return [TopicPartition(topic, p) for topic, count in topics for p in range(count)]


class Recorder:
    """Reads every topic a result (or a dead letter) can land on, from the beginning, into the ledger."""

    def __init__(self, bootstrap: str, ledger: Ledger) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            enable_auto_commit=False,
            isolation_level="read_committed",
            fetch_max_bytes=64 * 1024 * 1024,
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        self.ledger = ledger
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Assign the partitions and start reading in the background."""
        await self._consumer.start()
        partitions = watched_partitions()
        self._consumer.assign(partitions)
        await self._consumer.seek_to_beginning(*partitions)
        self._task = asyncio.create_task(self._read())

    async def stop(self) -> None:
        """Stop reading (bounded)."""
        if self._task:
            self._task.cancel()
        try:
            await asyncio.wait_for(self._consumer.stop(), 20)
        except (TimeoutError, Exception) as error:
            log.warning("consumer stop: %r", error)

    async def _read(self) -> None:
        while True:
            try:
                batches = await self._consumer.getmany(timeout_ms=200, max_records=5000)
            except Exception as error:  # the broker is down: aiokafka reconnects, so keep polling
                log.warning("results poll: %r", error)
                await asyncio.sleep(1)
                continue
            for tp, records in batches.items():
                for record in records:
                    self._take(tp.topic, record.value)

    def _take(self, topic: str, value: bytes | None) -> None:
        try:
            body = json.loads(value or b"")
        except ValueError:
            self.ledger.unparsable_results += 1
            return
        if topic == DEADLETTER.name:
            coordinates = (int(body.get("source_partition", -1)), int(body.get("source_offset", -1)))
            if body.get("source_topic") == poison.REQUESTS_TOPIC:
                self.ledger.dead_letters.add(coordinates)
            elif body.get("source_topic") in CONTROL_TOPICS:
                self.ledger.control_dead_letters.add((str(body["source_topic"]), *coordinates))
        elif body.get("type") == "inference_completed" and "request_id" in body:
            self.ledger.on_result(Result(body["request_id"], str(body.get("status")), topic, body.get("reason") or ""))
