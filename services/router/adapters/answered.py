"""Read back which requests have results: the request ids of results written in a time window.

Used once after a partition comes from an owner that did not hand it over gracefully (its last
commit was not final), so a request that owner answered after its last commit is not answered
again. Bounded in time; what it cannot read in time counts as unanswered (a repeat, never a loss).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.kafka_security import PLAINTEXT, KafkaSecurity

log = logging.getLogger(__name__)


def request_id_of(value: bytes | None) -> str | None:
    """The request id of a result record, if it is one."""
    if not value or b'"inference_completed"' not in value:
        return None
    try:
        found = json.loads(value).get("request_id")
    except (ValueError, AttributeError):
        return None
    return found if isinstance(found, str) else None


async def answered_between(
    bootstrap: str,
    wanted: Callable[[str], bool],
    since_ms: int,
    until_ms: int,
    timeout_s: float,
    security: KafkaSecurity = PLAINTEXT,
) -> set[str]:
    """Request ids of results on the topics `wanted` accepts, written between the two times."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        isolation_level="read_committed",
        **security.client_options(),
    )
    await consumer.start()
    ids: set[str] = set()
    try:
        async with asyncio.timeout(timeout_s):
            # `consumer.topics()` fetches metadata into a copy; partitions_for_topic would not see it.
            cluster = await consumer._client.fetch_all_metadata()
            topics = sorted(t for t in cluster.topics() if wanted(t))
            tps = [TopicPartition(t, p) for t in topics for p in sorted(cluster.partitions_for_topic(t) or ())]
            if not tps:
                return ids
            consumer.assign(tps)
            starts = await consumer.offsets_for_times({tp: since_ms for tp in tps})
            ends = await consumer.end_offsets(tps)
            todo = {tp: ends[tp] for tp, start in starts.items() if start is not None and start.offset < ends[tp]}
            for tp in tps:
                if tp in todo:
                    consumer.seek(tp, starts[tp].offset)
            while todo:
                batch = await consumer.getmany(*todo, timeout_ms=200)
                for tp, records in batch.items():
                    for record in records:
                        if record.timestamp > until_ms:
                            todo.pop(tp, None)
                            break
                        if (request_id := request_id_of(record.value)) is not None:
                            ids.add(request_id)
                for tp in list(todo):
                    if await consumer.position(tp) >= todo[tp]:
                        del todo[tp]
    except TimeoutError:
        log.warning("reading back results timed out after %.0f s; %d found so far", timeout_s, len(ids))
    finally:
        await consumer.stop()
    return ids


async def first_timestamps(
    bootstrap: str, starts: dict[TopicPartition, int], timeout_s: float, security: KafkaSecurity = PLAINTEXT
) -> dict[TopicPartition, int]:
    """Kafka's timestamp (ms) of the record at each given offset (partitions without one are left out)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **security.client_options())
    await consumer.start()
    found: dict[TopicPartition, int] = {}
    try:
        consumer.assign(list(starts))
        for tp, offset in starts.items():
            consumer.seek(tp, offset)
        async with asyncio.timeout(timeout_s):
            while len(found) < len(starts):
                batch = await consumer.getmany(*[tp for tp in starts if tp not in found], timeout_ms=200, max_records=1)
                for tp, records in batch.items():
                    if records:
                        found[tp] = records[0].timestamp
    except TimeoutError:
        log.warning("could not read the first uncommitted request of %s in time", sorted(set(starts) - set(found)))
    finally:
        await consumer.stop()
    return found
