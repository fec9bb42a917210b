"""A minimal dispatcher: one request, one Triton call, one result — the shared plumbing end to end.

It shows that the platform's pieces connect (Kafka in, Triton, Kafka out, dead letters, traces).
It does no batching, scoring or cold start: that is the router service's job.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from faststream.kafka import KafkaBroker

from services.router.adapters.triton_client import Prompt, TritonClient
from shared.broker import publish_event
from shared.events import (
    INFERENCE_REQUESTS,
    INFERENCE_RESULTS,
    InferenceCompleted,
    InferenceRequested,
    ResultStatus,
    Timings,
)
from shared.events import Topic as EventTopic
from shared.subscribe import subscribe

SOURCE = "passthrough"


def register_passthrough(broker: KafkaBroker, servers: Sequence[tuple[str, str]], group_id: str) -> list[TritonClient]:
    """Serve requests from Kafka round-robin over `servers` ((server id, Triton HTTP address))."""
    clients = [(server_id, TritonClient(url)) for server_id, url in servers]
    turn = itertools.cycle(clients)

    async def on_inference_requested(request: InferenceRequested) -> None:
        server_id, client = next(turn)
        received = time.perf_counter()
        queued_ms = max(0.0, (datetime.now(UTC) - request.occurred_at).total_seconds() * 1000)
        try:
            batch = await client.infer(
                request.model_id, [Prompt(request.prompt, request.max_tokens, request.temperature, request.top_p)]
            )
            completion = batch.completions[0]
            result = InferenceCompleted(
                source=SOURCE,
                request_id=request.request_id,
                model_id=request.model_id,
                status=ResultStatus.OK,
                text=completion.text,
                server_id=server_id,
                tokens_in=completion.tokens_in,
                tokens_out=completion.tokens_out,
                timings=Timings(
                    queued_ms=queued_ms,
                    inference_ms=batch.inference_ms,
                    total_ms=queued_ms + (time.perf_counter() - received) * 1000,
                ),
            )
        except Exception as error:  # a failed call still ends in exactly one result
            result = InferenceCompleted(
                source=SOURCE,
                request_id=request.request_id,
                model_id=request.model_id,
                status=ResultStatus.FAILED,
                reason=f"{type(error).__name__}: {error}"[:500],
                server_id=server_id,
            )
        topic = EventTopic(request.reply_topic, 1, (InferenceCompleted,)) if request.reply_topic else INFERENCE_RESULTS
        await publish_event(broker, topic, result, key=request.request_id)

    subscribe(broker, INFERENCE_REQUESTS, group_id, on_inference_requested, source=SOURCE)
    return [client for _, client in clients]
