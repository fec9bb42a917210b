"""Small helpers for integration tests: raw produce, collect from a topic, run a service app."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from shared.subscribe import topic_group


async def produce_raw(bootstrap: str, topic: str, values: list[bytes], key: bytes = b"k") -> None:
    """Send raw bytes, as any plain Kafka producer would."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


async def collect(bootstrap: str, topic: str, want: Callable[[list[Any]], bool], timeout: float = 30.0) -> list[Any]:
    """Read `topic` from the beginning until `want(records)` holds or `timeout` passes."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=f"test-{uuid.uuid4()}", auto_offset_reset="earliest"
    )
    await consumer.start()
    records: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not want(records):
            batch = await consumer.getmany(timeout_ms=500)
            for partition_records in batch.values():
                records.extend(partition_records)
    finally:
        await consumer.stop()
    return records


async def wait_for(check: Callable[[], Any], timeout: float = 30.0, interval: float = 0.2) -> Any:
    """Await an async or sync `check` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result or time.monotonic() > deadline:
            return result
        await asyncio.sleep(interval)


@contextlib.asynccontextmanager
async def running(broker: Any) -> AsyncIterator[None]:
    """Run a FastStream broker's subscribers for the duration of the block."""
    async with broker:
        await broker.start()
        yield


async def start_group_at_end(bootstrap: str, group_id: str, *topics: str) -> None:
    """Commit `group_id`'s offsets at the current end of `topics`.

    A service started in a test with a fresh group reads from the earliest offset (the delivery
    contract); on a broker that earlier tests (or runs) have written to, that would replay their
    history. Committing the end first gives the test only the messages it sends itself.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(list(topics))
    finally:
        await admin.close()
    partitions = [TopicPartition(d["topic"], p["partition"]) for d in described for p in d["partitions"]]
    if not partitions:
        raise LookupError(f"no partitions for {topics}: create the topics first (ensure_topics)")
    # The service's group itself, and the per-topic groups its subscribers use (topic_group).
    for group in [group_id, *(topic_group(group_id, topic) for topic in topics)]:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
        await consumer.start()
        try:
            consumer.assign(partitions)
            ends = await consumer.end_offsets(partitions)
            await consumer.commit(dict(ends))
        finally:
            await consumer.stop()
