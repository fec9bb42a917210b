"""Scaling actions on real Kafka drive real Triton servers; allocation events follow once real."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from deploy.local import triton
from services.allocator.adapters.orm import deployment_plan, gpu_pool, gpu_price, server
from services.allocator.app import create_app
from shared.events import (
    ALLOCATIONS,
    PRICES,
    SCALING_ACTIONS,
    ActionKind,
    GpuPrice,
    PricesPublished,
    ScalingActionRequested,
)
from tests.integration.allocator.conftest import serving
from tests.integration.helpers import collect, produce_raw, start_group_at_end, wait_for

pytestmark = pytest.mark.timeout(300)


def request(model_id: str, region: str, kind: ActionKind, target: int) -> ScalingActionRequested:
    return ScalingActionRequested(
        source="test", action_id=f"act-{uuid.uuid4().hex[:10]}", model_id=model_id, region=region, kind=kind,
        current_instances=0, target_instances=target, reason="integration test",
    )  # fmt: skip


async def send(bootstrap: str, *events: ScalingActionRequested) -> None:
    for event in events:
        await produce_raw(
            bootstrap, SCALING_ACTIONS.name, [event.model_dump_json().encode()], key=event.model_id.encode()
        )


async def events_of(
    bootstrap: str, action_id: str, enough: Callable[[list[dict[str, Any]]], bool], timeout: float = 180.0
) -> list[dict[str, Any]]:
    def mine(records: list[Any]) -> list[dict[str, Any]]:
        return [e for e in (json.loads(r.value) for r in records) if e.get("action_id") == action_id]

    return mine(await collect(bootstrap, ALLOCATIONS.name, lambda rs: enough(mine(rs)), timeout=timeout))


def has(*types: str) -> Callable[[list[dict[str, Any]]], bool]:
    """Enough when every type is there, or the action failed (so a failure shows its reason at once)."""
    return lambda events: (
        set(types) <= {e["type"] for e in events} or any(e["type"] == "allocation_failed" for e in events)
    )


async def available(runtime: Any, region: str) -> int:
    async with runtime.sessions() as session:
        return int(
            (await session.execute(select(gpu_pool.c.available).where(gpu_pool.c.region == region))).scalar_one()
        )


async def servers_of(runtime: Any, prefix: str) -> list[Any]:
    async with runtime.sessions() as session:
        return list((await session.execute(select(server).where(server.c.server_id.startswith(prefix)))).all())


async def test_scale_up_starts_a_server_that_answers_and_unload_stops_it(test_fleet, kafka_bootstrap):
    settings, region, model = test_fleet.settings, test_fleet.region, test_fleet.echo
    await start_group_at_end(kafka_bootstrap, settings.group_id, SCALING_ACTIONS.name, PRICES.name, ALLOCATIONS.name)
    service = create_app(settings)[1]
    runtime = service.runtime
    up = request(model, region, ActionKind.SCALE_UP, 2)
    async with serving(service):
        await send(kafka_bootstrap, up)
        events = await events_of(kafka_bootstrap, up.action_id, has("server_allocated", "model_loaded"))
        assert [e["type"] for e in events] == ["server_allocated", "model_loaded"], events
        allocated, loaded = events
        assert triton.model_ready(allocated["endpoint"], "echo")  # the server named answers, model ready
        assert (allocated["region"], allocated["gpu_type"], allocated["gpu_count"]) == (region, "a100_80gb", 1)
        assert allocated["cost_per_hour"] == pytest.approx(4.10) and allocated["pricing_class"] == "on_demand"
        assert allocated["server_id"].startswith(settings.server_prefix)
        assert (loaded["server_id"], loaded["triton_model"], loaded["instances"]) == (allocated["server_id"], "echo", 2)
        assert await available(runtime, region) == 2
        async with runtime.sessions() as session:
            plan = (await session.execute(select(deployment_plan).where(deployment_plan.c.model_id == model))).one()
        assert (plan.server_id, plan.strategy, plan.quantisation, plan.gpus) == (
            allocated["server_id"],
            "single",
            "fp16",
            1,
        )

        # The same action again: the same event redelivered, and the scaler re-sending it.
        await send(kafka_bootstrap, up, up.model_copy(update={"event_id": uuid.uuid4()}))
        more = request(model, region, ActionKind.SCALE_UP, 3)  # read after the duplicates (same key)
        await send(kafka_bootstrap, more)
        grown = await events_of(kafka_bootstrap, more.action_id, has("model_loaded"), timeout=60)
        assert [(e["type"], e["server_id"], e["instances"]) for e in grown] == [
            ("model_loaded", allocated["server_id"], 3)  # the room on the running server, no new one
        ]
        assert len(await servers_of(runtime, settings.server_prefix)) == 1
        assert await available(runtime, region) == 2
        again = await events_of(kafka_bootstrap, up.action_id, lambda es: False, timeout=2)
        assert [e["event_id"] for e in again] == [e["event_id"] for e in events]  # nothing announced twice

        same = request(model, region, ActionKind.PRELOAD, 3)  # already there: answered, nothing changes
        await send(kafka_bootstrap, same)
        confirmed = await events_of(kafka_bootstrap, same.action_id, has("model_loaded"), timeout=60)
        assert [(e["server_id"], e["instances"]) for e in confirmed] == [(allocated["server_id"], 3)]

        down = request(model, region, ActionKind.UNLOAD, 0)
        await send(kafka_bootstrap, down)
        released = await events_of(kafka_bootstrap, down.action_id, has("model_unloaded", "server_released"))
        assert [e["type"] for e in released] == ["model_unloaded", "server_released"]
        assert all(e["server_id"] == allocated["server_id"] for e in released)
        assert not triton.server_ready(allocated["endpoint"])  # the process is gone
        assert allocated["server_id"] not in triton.status()
        assert await available(runtime, region) == 3
        assert [s.state for s in await servers_of(runtime, settings.server_prefix)] == ["released"]
        async with runtime.sessions() as session:
            assert not (await session.execute(select(deployment_plan).where(deployment_plan.c.model_id == model))).all()
    await runtime.close()


async def test_failures_say_why_and_give_the_gpus_back(test_fleet, kafka_bootstrap):
    settings, region = test_fleet.settings, test_fleet.region
    await start_group_at_end(kafka_bootstrap, settings.group_id, SCALING_ACTIONS.name, PRICES.name, ALLOCATIONS.name)
    service = create_app(settings)[1]
    runtime = service.runtime
    ghost = request(test_fleet.ghost, region, ActionKind.SCALE_UP, 1)
    too_many = request(test_fleet.echo, region, ActionKind.SCALE_UP, 100)
    unknown = request(f"unknown-{uuid.uuid4().hex[:6]}", region, ActionKind.PRELOAD, 1)
    async with serving(service):
        await send(kafka_bootstrap, too_many, unknown, ghost)
        reasons = {}
        for action in (too_many, unknown, ghost):
            failed = await events_of(kafka_bootstrap, action.action_id, has("allocation_failed"))
            assert [e["type"] for e in failed] == ["allocation_failed"]
            reasons[action.action_id] = failed[0]["reason"]
        assert "insufficient resources" in reasons[too_many.action_id]
        assert "unknown model" in reasons[unknown.action_id]
        assert f"no-such-model-{region.removeprefix('test-')} is not in the repository" in reasons[ghost.action_id]
        assert await available(runtime, region) == 3
        states = [s.state for s in await servers_of(runtime, settings.server_prefix)]
        assert states == ["failed"]  # the ghost's server was started, then stopped
        assert not [name for name in triton.status() if name.startswith(settings.server_prefix)]
    await runtime.close()


async def test_an_action_cut_short_after_planning_is_carried_on_when_redelivered(test_fleet, kafka_bootstrap):
    from services.allocator.use_cases import planning

    settings, region = test_fleet.settings, test_fleet.region
    await start_group_at_end(kafka_bootstrap, settings.group_id, SCALING_ACTIONS.name, PRICES.name, ALLOCATIONS.name)
    up = request(test_fleet.echo, region, ActionKind.PRELOAD, 1)
    # A first delivery that planned and took the GPUs, then died before starting the server.
    _app, first = create_app(settings)
    crashed = first.runtime
    assert await planning.plan_action(first.allocator, "allocator.on_scaling_action_requested", up)
    assert [s.state for s in await servers_of(crashed, settings.server_prefix)] == ["starting"]
    assert await available(crashed, region) == 2
    await crashed.close()

    service = create_app(settings)[1]
    runtime = service.runtime
    async with serving(service):
        await send(kafka_bootstrap, up)  # Kafka delivers it again: the offset was never committed
        events = await events_of(kafka_bootstrap, up.action_id, has("server_allocated", "model_loaded"))
        assert [e["type"] for e in events] == ["server_allocated", "model_loaded"], events
        assert triton.model_ready(events[0]["endpoint"], "echo")
        assert [s.state for s in await servers_of(runtime, settings.server_prefix)] == ["running"]
        assert await available(runtime, region) == 2  # the GPU taken at planning, not a second one
    await runtime.close()


async def test_published_prices_set_the_cost_of_new_servers(test_fleet, kafka_bootstrap):
    settings, region = test_fleet.settings, test_fleet.region
    await start_group_at_end(kafka_bootstrap, settings.group_id, SCALING_ACTIONS.name, PRICES.name, ALLOCATIONS.name)
    service = create_app(settings)[1]
    runtime = service.runtime
    prices = PricesPublished(
        source="test",
        prices=[
            GpuPrice(
                region=region, gpu_type="a100_80gb", on_demand_per_hour=3.33, spot_per_hour=1.0, reserved_per_hour=2.0
            )
        ],
    )
    up = request(test_fleet.echo, region, ActionKind.SCALE_UP, 5)  # 4 per GPU: two GPUs on one server
    async with serving(service):
        await produce_raw(kafka_bootstrap, PRICES.name, [prices.model_dump_json().encode()], key=region.encode())

        async def price_recorded() -> bool:
            async with runtime.sessions() as session:
                query = select(gpu_price.c.on_demand_per_hour).where(gpu_price.c.region == region)
                return bool((await session.execute(query)).scalar_one() == 3.33)

        assert await wait_for(price_recorded, timeout=120)  # the two topics are read independently
        await send(kafka_bootstrap, up)
        events = await events_of(kafka_bootstrap, up.action_id, has("server_allocated", "model_loaded"))
        assert [e["type"] for e in events] == ["server_allocated", "model_loaded"], events
        assert (events[0]["gpu_count"], events[0]["cost_per_hour"]) == (2, pytest.approx(6.66))
        assert await available(runtime, region) == 1
    await runtime.close()
