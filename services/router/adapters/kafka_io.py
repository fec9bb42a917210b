"""The hot path's Kafka clients: a plain aiokafka consumer loop and a non-blocking producer.

FastStream's per-message handler costs more than the router's whole processing budget at
thousands of requests per second, so requests are read with `getmany` and results are appended
to the producer's batches without waiting for each acknowledgement (the ack callback releases
the request's offset for commit instead).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition


class _Revocations(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, on_revoked: Callable[[list[TopicPartition]], Awaitable[None]]) -> None:
        self._on_revoked = on_revoked

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        """Commit what is done before the partitions move."""
        await self._on_revoked(list(revoked))

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        """Nothing to do: positions come from the committed offsets."""
        return None


def request_consumer(bootstrap: str, group_id: str, client_id: str, max_poll_records: int) -> AIOKafkaConsumer:
    """A consumer of the request topic that never commits on its own (the router commits after results)."""
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group_id,
        client_id=client_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=max_poll_records,
        fetch_max_wait_ms=20,
    )


def subscribe_requests(
    consumer: AIOKafkaConsumer, on_revoked: Callable[[list[TopicPartition]], Awaitable[None]], topic: str
) -> None:
    """Subscribe to the request topic; `on_revoked` commits what it can before partitions move."""
    consumer.subscribe([topic], listener=_Revocations(on_revoked))


def result_producer(bootstrap: str, client_id: str) -> AIOKafkaProducer:
    """A producer acknowledged by all in-sync replicas, batching results for a few milliseconds."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=2,
        max_batch_size=512 * 1024,
    )
