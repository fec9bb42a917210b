"""Reads the platform's consumer groups' committed offsets and the partitions' end offsets."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from services.monitor.domain.lag import group_lag
from shared.kafka_security import PLAINTEXT, KafkaSecurity


async def consumer_lags(bootstrap: str, group_prefix: str, security: KafkaSecurity = PLAINTEXT) -> dict[str, int]:
    """Lag (messages) of every consumer group whose id starts with `group_prefix`."""
    options = security.client_options()
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="llmfleet-monitor-lag", **options)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **options)
    await admin.start()
    await consumer.start()
    try:
        groups = [g[0] for g in await admin.list_consumer_groups() if str(g[0]).startswith(group_prefix)]
        committed: dict[str, dict[TopicPartition, int]] = {}
        for group in groups:
            offsets = await admin.list_consumer_group_offsets(group)
            committed[group] = {tp: meta.offset for tp, meta in offsets.items()}
        partitions = {tp for offsets in committed.values() for tp in offsets}
        ends = await consumer.end_offsets(list(partitions)) if partitions else {}
        return {group: group_lag(offsets, ends) for group, offsets in committed.items()}
    finally:
        await consumer.stop()
        await admin.close()
