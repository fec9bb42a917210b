"""The fleet as the router sees it: `fleet.allocations.v1` replayed from the start and followed, no group."""

from __future__ import annotations

import logging

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from services.gateway.domain.catalogue import Catalogue
from shared.events import ALLOCATIONS, ModelLoaded, ModelUnloaded, ServerAllocated, ServerReleased
from shared.kafka_security import PLAINTEXT, KafkaSecurity

log = logging.getLogger(__name__)


def apply(catalogue: Catalogue, event: object) -> None:
    """One allocation event into the catalogue (other events change nothing it shows)."""
    if isinstance(event, ServerAllocated):
        catalogue.server_allocated(event.server_id, event.region)
    elif isinstance(event, ServerReleased):
        catalogue.server_released(event.server_id)
    elif isinstance(event, ModelLoaded):
        catalogue.model_loaded(event.model_id, event.server_id, event.region)
    elif isinstance(event, ModelUnloaded):
        catalogue.model_unloaded(event.model_id, event.server_id)


async def follow(bootstrap: str, catalogue: Catalogue, security: KafkaSecurity = PLAINTEXT) -> None:
    """Replay every allocation event, then follow new ones, for ever (each replica reads them all)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **security.client_options())
    adapter = ALLOCATIONS.adapter()
    await consumer.start()
    try:
        partitions = [TopicPartition(ALLOCATIONS.name, p) for p in range(ALLOCATIONS.partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        while True:
            for records in (await consumer.getmany(timeout_ms=1000, max_records=5000)).values():
                for record in records:
                    try:
                        apply(catalogue, adapter.validate_json(record.value or b""))
                    except ValidationError:
                        log.debug("unreadable allocation record skipped")
    finally:
        await consumer.stop()
