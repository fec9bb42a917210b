"""The foundation demo: prompts go through Kafka to Triton and the generated text comes back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from llmfleet.client import FleetClient
from llmfleet.passthrough import register_passthrough
from shared.broker import create_broker
from shared.events import InferenceCompleted
from shared.telemetry import create_tracer_provider

PROMPTS = (
    "The GPU fleet in us-east-1 is",
    "Route this request to the cheapest server",
    "def fibonacci(n):",
    "Kafka, Postgres and Triton walk into a bar",
    "p95 latency under two seconds means",
    "Once upon a time, a batch of eight prompts",
)


@dataclass(frozen=True)
class DemoRun:
    sent: int
    results: dict[str, InferenceCompleted]
    prompts: dict[str, str]
    wall_s: float


async def run_demo(
    bootstrap: str,
    servers: Sequence[tuple[str, str]],
    prompts: Sequence[str] = PROMPTS,
    max_tokens: int = 24,
    timeout: float = 120.0,
) -> DemoRun:
    """Send `prompts` as Kafka requests, serve them on Triton, and collect every result."""
    provider = create_tracer_provider("demo")
    broker = create_broker(bootstrap, "llmfleet-demo", provider)
    clients = register_passthrough(broker, servers, group_id="llmfleet-demo-passthrough")
    started = time.perf_counter()
    try:
        async with broker:
            await broker.start()
            async with FleetClient(bootstrap, source="demo") as fleet:
                sent = {}
                for i, prompt in enumerate(prompts):
                    # Alternate greedy and sampled decoding to show both.
                    fields: dict[str, Any] = {"temperature": 0.0} if i % 2 == 0 else {"temperature": 0.8, "top_p": 0.9}
                    sent[await fleet.send("tinylm", prompt, max_tokens=max_tokens, **fields)] = prompt
                results = await fleet.collect(sent, timeout=timeout)
    finally:
        await asyncio.gather(*(client.close() for client in clients))
    return DemoRun(sent=len(sent), results=results, prompts=sent, wall_s=time.perf_counter() - started)
