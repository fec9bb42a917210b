"""A scaler app on the real Kafka and PostgreSQL, reading only what each test sends."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from services.scaler.app import create_app, migrate
from services.scaler.jobs import ScalerApp
from services.scaler.settings import ScalerSettings
from shared.events import ALLOCATIONS, DEMAND, MODEL_REQUESTS, SCALING_SIGNALS, SERVER_METRICS, DemandWindowReported
from shared.runtime import Runtime
from tests.integration.helpers import collect, produce_raw, running, start_group_at_end, wait_for

BUCKET_S = 10


@pytest.fixture
def scaler_settings(kafka_bootstrap: str, database_url) -> ScalerSettings:
    settings = ScalerSettings(
        kafka_bootstrap=kafka_bootstrap,
        database_url=database_url("scaler"),
        consumer_group=f"test-scaler-{uuid.uuid4().hex[:8]}",
        policy="aggressive",
        bucket_s=BUCKET_S,
        day_buckets=6,
        week_buckets=12,
        history_buckets=60,
        horizon_buckets=6,
        evaluation_interval_s=3600,  # rounds are run by the tests themselves
        cooldown_s=0,
        action_timeout_s=120,
        outbox_poll_s=0.2,
    )
    migrate(settings)
    return settings


@pytest.fixture
async def scaler(scaler_settings: ScalerSettings, kafka_bootstrap: str) -> AsyncIterator[ScalerApp]:
    topics = (DEMAND, SERVER_METRICS, SCALING_SIGNALS, MODEL_REQUESTS, ALLOCATIONS)
    await start_group_at_end(kafka_bootstrap, scaler_settings.group_id, *(t.name for t in topics))
    _app, scaler = create_app(scaler_settings)
    runtime = scaler.runtime
    async with running(runtime.broker):
        # Five subscribers join one group one after another; wait for the last rebalance.
        assert await wait_for(lambda: _all_assigned(runtime), timeout=60, interval=0.5)
        await scaler.start()
        try:
            yield scaler
        finally:
            await scaler.stop()
    await runtime.close()


def _all_assigned(runtime: Runtime) -> bool:
    consumers = [getattr(sub, "consumer", None) for sub in runtime.broker.subscribers]
    return all(c is not None and c.assignment() for c in consumers)


def steady_windows(
    model_id: str, region: str, per_window: int, buckets: int, now: datetime
) -> list[DemandWindowReported]:
    """One window per bucket for the `buckets` complete buckets before `now`."""
    current = int(now.timestamp() // BUCKET_S)
    windows = []
    for index in range(current - buckets, current):
        start = datetime.fromtimestamp(index * BUCKET_S, tz=UTC)
        windows.append(
            DemandWindowReported(
                source="test", model_id=model_id, region=region, window_start=start,
                window_end=start + timedelta(seconds=BUCKET_S), requests=per_window, ok=per_window,
                tokens_in=per_window * 100, tokens_out=per_window * 20,
            )
        )  # fmt: skip
    return windows


async def send(bootstrap: str, topic: str, events: list, key: str) -> None:
    await produce_raw(bootstrap, topic, [e.model_dump_json().encode() for e in events], key=key.encode())


async def read_events(bootstrap: str, topic: str, model_id: str, want: int, timeout: float = 45.0) -> list[dict]:
    """Events of `topic` for `model_id`, once at least `want` are there (or the timeout passes)."""

    def mine(records):
        return [e for e in (json.loads(r.value) for r in records) if e.get("model_id") == model_id]

    return mine(await collect(bootstrap, topic, lambda rs: len(mine(rs)) >= want, timeout=timeout))


async def settle() -> None:
    await asyncio.sleep(0.5)
