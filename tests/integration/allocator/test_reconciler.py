"""The reconciler on real Triton processes, Kafka and Postgres: a SIGKILLed server is replaced, an
unowned process is stopped, and the books balance."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select

from deploy.local import triton
from services.allocator.adapters.orm import server
from services.allocator.app import create_app
from services.allocator.domain.reconciliation import conservation_violations
from services.allocator.use_cases.reconciling import Reconciler
from shared.events import ALLOCATIONS, PRICES, SCALING_ACTIONS, ActionKind
from tests.integration.allocator.conftest import serving
from tests.integration.allocator.test_scaling_actions import events_of, has, request, send
from tests.integration.helpers import collect, start_group_at_end, wait_for

pytestmark = pytest.mark.timeout(300)

FAST = {"reconcile_interval_s": 1.0, "dead_after_s": 2.0, "orphan_grace_s": 2.0}


async def test_a_sigkilled_server_is_released_and_its_model_placed_again(test_fleet, kafka_bootstrap):
    settings = test_fleet.settings.model_copy(update=FAST)
    region, model = test_fleet.region, test_fleet.echo
    await start_group_at_end(kafka_bootstrap, settings.group_id, SCALING_ACTIONS.name, PRICES.name, ALLOCATIONS.name)
    service = create_app(settings)[1]
    up = request(model, region, ActionKind.SCALE_UP, 1)
    async with serving(service):
        await send(kafka_bootstrap, up)
        allocated = (await events_of(kafka_bootstrap, up.action_id, has("server_allocated", "model_loaded")))[0]
        assert allocated["type"] == "server_allocated", allocated
        lost = allocated["server_id"]
        triton.kill_server(lost)  # SIGKILL, as a crash or the OOM killer would

        def repaired(records: list[Any]) -> bool:
            events = [json.loads(r.value) for r in records]
            gone = any(e["type"] == "fleet_repaired" and e.get("server_id") == lost for e in events)
            replaced = any(
                e["type"] == "model_loaded" and (e.get("action_id") or "").startswith(f"replace-{lost}-")
                for e in events
            )
            return gone and replaced

        events = [json.loads(r.value) for r in await collect(kafka_bootstrap, ALLOCATIONS.name, repaired, timeout=180)]
        released = [e for e in events if e["type"] == "server_released" and e["server_id"] == lost]
        assert released, "the router and the scaler must hear that the server is gone"
        (repair,) = [e for e in events if e["type"] == "fleet_repaired" and e.get("server_id") == lost]
        assert repair["repair"] == "server_gone" and "no process" in repair["reason"]
        (loaded,) = [
            e
            for e in events
            if e["type"] == "model_loaded" and (e.get("action_id") or "").startswith(f"replace-{lost}")
        ]
        assert loaded["server_id"] != lost and triton.model_ready(_endpoint(loaded["server_id"]), "echo")

        async with service.runtime.sessions() as session:
            states = dict((await session.execute(select(server.c.server_id, server.c.state).where(
                server.c.server_id.startswith(settings.server_prefix)))).all())  # fmt: skip
        assert states == {lost: "failed", loaded["server_id"]: "running"}
        assert service.metrics.repairs.labels("server_gone")._value.get() == 1
        async with service.allocator.units.transaction() as repo:
            assert conservation_violations(await repo.pool_accounts()) == []
    await service.runtime.close()


async def test_a_process_no_row_owns_is_stopped_and_reported(test_fleet, kafka_bootstrap):
    settings = test_fleet.settings.model_copy(update=FAST)
    service = create_app(settings)[1]
    stray = f"{settings.server_prefix}-{test_fleet.region}-stray"
    triton.start_server(stray, triton.PROFILES["a100_80gb"], region=test_fleet.region, base_port=8300)
    reconciler = Reconciler(service.allocator)
    try:
        assert await reconciler.reconcile() == {}  # first seen: it may be a start whose row is committing
        assert stray in triton.status()

        async def stopped() -> bool:
            made = await reconciler.reconcile()
            return made.get("orphan_stopped") == 1

        assert await wait_for(stopped, timeout=30)
        assert stray not in triton.status()
    finally:
        triton.stop_server(stray)
        await service.runtime.close()


def _endpoint(server_id: str) -> str:
    return str(triton.status()[server_id]["http_url"])
