"""FastStream Kafka broker factory, at-least-once subscriber options and topic creation."""

from __future__ import annotations

import contextlib
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from opentelemetry.sdk.trace import TracerProvider

from shared.events import ALL_TOPICS, Event, Topic
from shared.kafka_security import PLAINTEXT, KafkaSecurity


def create_broker(
    bootstrap: str, client_id: str, tracer_provider: TracerProvider, security: KafkaSecurity = PLAINTEXT
) -> KafkaBroker:
    """A broker whose publishes are acknowledged by all in-sync replicas and traced."""
    return KafkaBroker(
        bootstrap,
        security=security.faststream(),
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        allow_auto_create_topics=False,
        middlewares=[KafkaTelemetryMiddleware(tracer_provider=tracer_provider)],
        graceful_timeout=15.0,
        logger=None,
    )


def at_least_once(group_id: str) -> dict[str, Any]:
    """Subscriber options: offsets committed only after the handler returns (and its DB commit).

    FastStream's default acknowledges on receipt (at-most-once); with NACK_ON_ERROR a handler
    that raises leaves the offset where it was, so the message comes again.
    """
    return {
        "group_id": group_id,
        "ack_policy": AckPolicy.NACK_ON_ERROR,
        "auto_offset_reset": "earliest",
    }


async def ensure_topics(
    bootstrap: str, topics: tuple[Topic, ...] = ALL_TOPICS, security: KafkaSecurity = PLAINTEXT
) -> list[str]:
    """Create the platform's topics with their partition counts; return the ones created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="llmfleet-topics", **security.client_options())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t.name not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another process created it first
                await admin.create_topics(
                    [NewTopic(name=t.name, num_partitions=t.partitions, replication_factor=1) for t in missing]
                )
        return [t.name for t in missing]
    finally:
        await admin.close()


async def publish_event(broker: KafkaBroker, topic: Topic, event: Event, key: str) -> None:
    """Publish one event as JSON, keyed by its aggregate id so per-key order holds."""
    await broker.publish(
        event.model_dump_json().encode(),
        topic.name,
        key=key.encode(),
        headers={"content-type": "application/json", "event-type": type(event).__name__},
    )
