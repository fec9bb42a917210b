"""Inference requests and their one result each."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.events.envelope import Event


class RoutingStrategy(StrEnum):
    LATENCY_OPTIMIZED = "latency_optimized"
    COST_OPTIMIZED = "cost_optimized"
    BALANCED = "balanced"


class ResultStatus(StrEnum):
    OK = "ok"
    REJECTED = "rejected"
    FAILED = "failed"


class InferenceRequested(Event):
    """A client asks for a completion; keyed by request id.

    Forward compatible: fields this version does not know are ignored (a newer producer's optional
    fields), so the request is served; every other invalid request gets a `rejected` result.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    type: Literal["inference_requested"] = "inference_requested"
    request_id: str = Field(min_length=1, max_length=200)
    model_id: str = Field(min_length=1, max_length=200)
    prompt: str = Field(max_length=200_000)
    max_tokens: int = Field(default=64, ge=1, le=8192)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    priority: int = Field(default=0, ge=0, le=9, description="higher is served first")
    user_region: str = "us-east-1"
    routing_strategy: RoutingStrategy = RoutingStrategy.BALANCED
    deadline: datetime | None = None
    reply_topic: str | None = Field(default=None, min_length=1, max_length=249)
    fail_fast: bool = Field(
        default=False, description="reject at once when the model's queue is full, instead of waiting in Kafka"
    )
    stream: bool = Field(
        default=False,
        description="send InferenceChunk events to reply_topic as tokens are generated, before the one result",
    )


class Timings(BaseModel):
    """Where a request's time went, in milliseconds."""

    model_config = ConfigDict(frozen=True)

    queued_ms: float = 0.0
    batched_ms: float = 0.0
    inference_ms: float = 0.0
    total_ms: float = 0.0
    first_token_ms: float | None = None  # streamed requests: from the Triton call to its first token


class InferenceCompleted(Event):
    """The one result of a request: ok, rejected (with reason) or failed (with reason)."""

    type: Literal["inference_completed"] = "inference_completed"
    request_id: str
    model_id: str
    status: ResultStatus
    text: str = ""
    reason: str | None = None
    server_id: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    timings: Timings = Timings()


class InferenceChunk(Event):
    """Part of a streamed request's text, sent to its reply topic (keyed by request id) as it is generated.

    Best effort and extra: the request still ends in its one `InferenceCompleted`, whose text is
    the whole text. `index` counts a request's chunks from 0, so a reader can drop repeats.
    """

    type: Literal["inference_chunk"] = "inference_chunk"
    request_id: str
    model_id: str
    index: int = Field(ge=0)
    text: str
    tokens_out: int = Field(default=0, ge=0, description="tokens generated so far, this chunk's included")
