"""Request records as raw bytes: well-formed ones, and the poison a careless producer could send."""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

REQUESTS_TOPIC = "inference.requests.v1"
RESULTS_TOPIC = "inference.results.v1"
DEADLETTER_TOPIC = "fleet.deadletter.v1"
ALLOCATIONS_TOPIC = "fleet.allocations.v1"
FORBIDDEN_REPLY_TOPICS = ("__consumer_offsets", ALLOCATIONS_TOPIC)
REPLY_TOPICS = ("chaos.replies.a", "chaos.replies.b")  # created by the harness; results there are read
UNREADABLE_BYTES = 800_000
OVER_LIMIT_TOKENS = 8_000  # the schema allows up to 8,192; tinylm refuses more than 512


@dataclass(frozen=True)
class Record:
    """One record to send: its request id (None: unreadable), kind, key and value."""

    request_id: str | None
    kind: str
    value: bytes
    has_deadline: bool = False


def request(
    request_id: str,
    model_id: str,
    prompt: str,
    max_tokens: int,
    now: datetime,
    **extra: Any,
) -> dict[str, Any]:
    """A valid InferenceRequested as a plain dict (the wire format, built without the schema classes)."""
    return {
        "event_id": str(uuid.uuid4()),
        "occurred_at": now.isoformat(),
        "schema_version": 1,
        "source": "chaos",
        "type": "inference_requested",
        "request_id": request_id,
        "model_id": model_id,
        "prompt": prompt,
        "max_tokens": max_tokens,
        **extra,
    }


def encode(body: dict[str, Any]) -> bytes:
    """JSON bytes of a record body."""
    return json.dumps(body, separators=(",", ":")).encode()


def bundle(tag: str, now: datetime, rng: random.Random) -> list[Record]:
    """One bundle of poison: each kind once, past deadlines five times (random reply topics)."""
    records = [
        Record(
            f"{tag}-naive-ts",
            "naive_year1_timestamp",
            encode({**request(f"{tag}-naive-ts", "echo", "poison", 4, now), "occurred_at": "0001-01-01T00:00:00"}),
        ),
        Record(None, "unreadable_800kb", rng.randbytes(UNREADABLE_BYTES)),
        Record(
            f"{tag}-extra",
            "unknown_fields",
            encode({**request(f"{tag}-extra", "echo", "poison", 4, now), "x_debug": {"a": 1}, "tenant": "chaos"}),
        ),
        Record(
            f"{tag}-max-tokens",
            "max_tokens_over_limit",
            encode(request(f"{tag}-max-tokens", "tinylm", "poison", OVER_LIMIT_TOKENS, now)),
        ),
    ]
    for i, topic in enumerate(FORBIDDEN_REPLY_TOPICS):
        rid = f"{tag}-forbidden-{i}"
        records.append(
            Record(rid, "forbidden_reply_topic", encode(request(rid, "echo", "p", 4, now, reply_topic=topic)))
        )
    for i in range(5):
        rid = f"{tag}-late-{i}"
        topic = rng.choice([*REPLY_TOPICS, f"chaos.no-such-topic.{rng.randrange(10**6)}"])
        deadline = (now - timedelta(seconds=rng.uniform(1, 3600))).isoformat()
        body = request(rid, "echo", "late", 4, now, reply_topic=topic, deadline=deadline)
        records.append(Record(rid, "past_deadline", encode(body), has_deadline=True))
    return records


def overload_prompt(size: int) -> str:
    """A printable prompt of exactly `size` characters (one string, shared by every overload request)."""
    words = "the fleet routes batches to servers across regions while demand rises "
    return (words * (size // len(words) + 1))[:size]


def now_utc() -> datetime:
    """The wall clock, timezone-aware (what a well-behaved producer writes)."""
    return datetime.now(UTC)
