"""The hot path's Kafka clients: a plain aiokafka consumer loop and a non-blocking producer.

FastStream's per-message handler costs more than the router's whole processing budget at
thousands of requests per second, so requests are read with `getmany` and results are appended
to the producer's batches without waiting for each acknowledgement (the ack callback releases
the request's offset for commit instead).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition

from shared.kafka_security import PLAINTEXT, KafkaSecurity

Rebalance = Callable[[list[TopicPartition]], Awaitable[None]]


class _Rebalances(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, on_revoked: Rebalance, on_assigned: Rebalance) -> None:
        self._on_revoked = on_revoked
        self._on_assigned = on_assigned

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        """Finish and commit what is in flight before the partitions move."""
        await self._on_revoked(list(revoked))

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        """Read which requests past the committed offsets are already answered."""
        await self._on_assigned(list(assigned))


def request_consumer(
    bootstrap: str,
    group_id: str,
    client_id: str,
    max_poll_records: int,
    fetch_max_bytes: int,
    security: KafkaSecurity = PLAINTEXT,
) -> AIOKafkaConsumer:
    """A consumer of the request topic that never commits on its own (the router commits after results)."""
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        **security.client_options(),
        group_id=group_id,
        client_id=client_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=max_poll_records,
        fetch_max_bytes=fetch_max_bytes,
        fetch_max_wait_ms=20,
    )


def subscribe_requests(consumer: AIOKafkaConsumer, on_revoked: Rebalance, on_assigned: Rebalance, topic: str) -> None:
    """Subscribe to the request topic with the router's rebalance handlers."""
    consumer.subscribe([topic], listener=_Rebalances(on_revoked, on_assigned))


async def committed_offsets(consumer: AIOKafkaConsumer, partitions: list[TopicPartition]) -> dict[TopicPartition, Any]:
    """Committed offset and metadata per partition (aiokafka's public `committed` drops the metadata)."""
    found: dict[TopicPartition, Any] = await consumer._coordinator.fetch_committed_offsets(partitions)
    return found


def result_producer(bootstrap: str, client_id: str, security: KafkaSecurity = PLAINTEXT) -> AIOKafkaProducer:
    """A producer acknowledged by all in-sync replicas, batching results for a few milliseconds."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        **security.client_options(),
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=2,
        # A result waits for a broker that is down; past this Delivery sends it again.
        request_timeout_ms=30_000,
        max_batch_size=512 * 1024,
    )
