"""The envelope every event carries, and the dead letter that keeps what no consumer could read."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


def _now() -> datetime:
    return datetime.now(UTC)


class Event(BaseModel):
    """The envelope every event carries."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    occurred_at: datetime = Field(default_factory=_now)
    schema_version: int = 1
    source: str = Field(min_length=1, max_length=100)


class DeadLettered(Event):
    """A message no consumer could read, kept with the reason and where it came from."""

    type: Literal["dead_lettered"] = "dead_lettered"
    reason: str
    consumer: str
    source_topic: str
    source_partition: int
    source_offset: int
    payload_b64: str = Field(description="the original bytes, base64")
