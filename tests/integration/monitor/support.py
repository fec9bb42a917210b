"""Helpers for the monitor's integration tests: run a monitor, publish events, load a Triton server."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from services.monitor.app import create_app
from services.monitor.jobs import MonitorApp
from services.monitor.settings import MonitorSettings
from shared.events import ALLOCATIONS, DEMAND, PRICES, SCALING_ACTIONS, USAGE, Event, Topic
from tests.integration.helpers import collect, produce_raw, running, start_group_at_end


@contextlib.asynccontextmanager
async def running_monitor(settings: MonitorSettings) -> AsyncIterator[MonitorApp]:
    """A monitor consuming only what the test sends, with its jobs running."""
    topics = (ALLOCATIONS.name, DEMAND.name, PRICES.name, SCALING_ACTIONS.name, USAGE.name)
    await start_group_at_end(settings.kafka_bootstrap, settings.group_id, *topics)
    _app, monitor = create_app(settings)
    async with running(monitor.runtime.broker):
        await monitor.start()
        try:
            yield monitor
        finally:
            await monitor.stop()
    await monitor.runtime.close()


async def publish(bootstrap: str, topic: Topic, key: str, *events: Event) -> None:
    """Send events as JSON, keyed like the platform does."""
    await produce_raw(bootstrap, topic.name, [e.model_dump_json().encode() for e in events], key=key.encode())


async def read(bootstrap: str, topic: Topic, match: dict[str, Any], count: int, timeout: float = 60) -> list[dict]:
    """Wait for `count` events on `topic` whose fields equal `match`, then a little more; return them all."""

    def mine(records: list[Any]) -> list[dict]:
        events = [json.loads(r.value) for r in records]
        return [e for e in events if all(_get(e, k) == v for k, v in match.items())]

    await collect(bootstrap, topic.name, lambda rs: len(mine(rs)) >= count, timeout=timeout)
    await asyncio.sleep(1.0)  # anything extra (a duplicate) would have arrived by now
    return mine(await collect(bootstrap, topic.name, lambda rs: False, timeout=3.0))


def _get(event: dict, dotted: str) -> Any:
    value: Any = event
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


async def put_load(http_url: str, model: str, requests: int, concurrency: int = 16) -> int:
    """Send `requests` inferences to a Triton server; return how many succeeded."""
    body = {
        "inputs": [
            {"name": "PROMPT", "shape": [1, 1], "datatype": "BYTES", "data": ["monitor load"]},
            {"name": "MAX_TOKENS", "shape": [1, 1], "datatype": "INT32", "data": [8]},
        ]
    }
    slots = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession() as session:

        async def one() -> bool:
            async with slots, session.post(f"http://{http_url}/v2/models/{model}/infer", json=body) as response:
                return response.status == 200

        results = await asyncio.gather(*(one() for _ in range(requests)))
    return sum(results)
