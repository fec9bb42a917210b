"""Faults injected on purpose, as the outside world would cause them: a cloud's spot interruption notice.

`llmfleet chaos spot-reclaim` and the demo's `--spot-reclaim-at` both publish through here, with a
plain Kafka producer, as a provider adapter outside the platform would.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaProducer

from shared.events import ALLOCATIONS, ModelLoaded, ServerAllocated, ServerReleased, SpotInterruptionNotice
from shared.kafka_security import kafka_security_from_env


def spot_notice(server_id: str, region: str, notice_s: float, source: str = "llmfleet-chaos") -> SpotInterruptionNotice:
    """The notice a cloud gives: the server is taken back `notice_s` seconds from now."""
    reclaim_at = datetime.now(UTC) + timedelta(seconds=notice_s)
    return SpotInterruptionNotice(
        source=source, server_id=server_id, region=region, reclaim_at=reclaim_at, provider=source
    )


async def publish_notice(bootstrap: str, notice: SpotInterruptionNotice) -> None:
    """Publish the notice on the allocations topic, keyed by server, as a provider adapter would."""
    # Only the allocator (and the admin) may write allocations on a secure broker: an operator's act.
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", **kafka_security_from_env().client_options())
    await producer.start()
    try:
        await producer.send_and_wait(
            ALLOCATIONS.name,
            notice.model_dump_json().encode(),
            key=notice.server_id.encode(),
            headers=[("content-type", b"application/json"), ("event-type", b"SpotInterruptionNotice")],
        )
    finally:
        await producer.stop()


def serving_server(events: Iterable[object], prefix: str) -> ServerAllocated | None:
    """The server of this deployment (`prefix`) that holds the most models and still runs; None if none does."""
    allocated: dict[str, ServerAllocated] = {}
    models: dict[str, set[str]] = {}
    for event in events:
        if isinstance(event, ServerAllocated) and event.server_id.startswith(prefix):
            allocated[event.server_id] = event
        elif isinstance(event, ServerReleased):
            allocated.pop(event.server_id, None)
        elif isinstance(event, ModelLoaded):
            models.setdefault(event.server_id, set()).add(event.model_id)
    holding = [s for s in allocated.values() if models.get(s.server_id)]
    return max(holding, key=lambda s: (len(models[s.server_id]), s.server_id), default=None)
