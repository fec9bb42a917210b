"""`llmfleet cost apply` changes the next cost report, once: the cost service and the allocator on real
Kafka and PostgreSQL.

Five one-GPU on-demand servers, 85% busy, in a pool of eight GPUs of this test's own GPU type. The
cost service recommends reserving three; applying it (the CLI's function) queues a
CapacityChangeRequested; the allocator covers three running servers with the commitment, audits
the request and announces CapacityChanged; the next report prices them reserved. Applying again,
and the request sent again, change nothing; a release of GPUs servers hold is refused and audited.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
import yaml
from sqlalchemy import delete, func, select

from llmfleet import cost as cli
from services.allocator.adapters import inventory
from services.allocator.adapters.orm import capacity_change, gpu, gpu_pool, gpu_price, server
from services.allocator.app import create_app as create_allocator
from services.allocator.app import migrate as migrate_allocator
from services.allocator.settings import AllocatorSettings
from services.cost.adapters.orm import fleet_server, pool_capacity, server_utilization
from shared.events import (
    ALLOCATIONS,
    PRICES,
    SCALING_ACTIONS,
    SERVER_METRICS,
    CapacityChangeRequested,
    ModelLoaded,
    ServerAllocated,
    ServerMetricsReported,
)
from tests.integration.helpers import produce_raw, running, start_group_at_end, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]
REGION = "us-east-1"
SERVERS = 5
ON_DEMAND, RESERVED = 4.10, 2.87  # the cost fixture's prices for its GPU type


@pytest.fixture
async def allocator(tmp_path: Path, kafka_bootstrap, database_url, gpu_type):
    tag = uuid.uuid4().hex[:8]
    config = {
        "gpu_types": {gpu_type: {"memory_gb": 80, "on_demand_per_hour": ON_DEMAND, "relative_speed": 0.6}},
        "regions": {REGION: 1.0},
        "pools": {REGION: {gpu_type: [8, 8, 0]}},
        "reserved_factor": RESERVED / ON_DEMAND,
        "models": {},
    }
    (tmp_path / "fleet.yaml").write_text(yaml.safe_dump(config))
    settings = AllocatorSettings(
        kafka_bootstrap=kafka_bootstrap,
        database_url=database_url("allocator"),
        consumer_group=f"test-allocator-{tag}",
        fleet_config=tmp_path / "fleet.yaml",
        server_prefix=f"allocator-c{tag}",
    )
    await asyncio.to_thread(migrate_allocator, settings)
    await start_group_at_end(kafka_bootstrap, settings.group_id, SCALING_ACTIONS.name, PRICES.name, ALLOCATIONS.name)
    _app, service = create_allocator(settings)
    try:
        async with running(service.runtime.broker):  # its consumers only: no worker, no reconciler
            yield service
    finally:
        async with service.runtime.sessions.begin() as session:
            for table in (gpu, gpu_pool, gpu_price, server, capacity_change):
                await session.execute(delete(table).where(table.c.gpu_type == gpu_type))
        await service.runtime.close()


async def running_servers(allocator, gpu_type: str) -> list[str]:
    """Five servers of the allocator holding one GPU each (as if it had started them)."""
    ids = [f"{allocator.settings.server_prefix}-{REGION}-s{n}" for n in range(SERVERS)]
    async with allocator.runtime.sessions.begin() as session:
        for server_id in ids:
            await inventory.take_gpus(session, REGION, gpu_type, 1, server_id)
            await session.execute(
                server.insert().values(
                    server_id=server_id, region=REGION, gpu_type=gpu_type, gpu_count=1, state="running",
                    endpoint="127.0.0.1:1", metrics_url="http://127.0.0.1:2/metrics", cost_per_hour=ON_DEMAND,
                    pricing_class="on_demand",
                )
            )  # fmt: skip
    return ids


async def tell_the_cost_service(bootstrap: str, servers: list[str], gpu_type: str) -> None:
    model = f"model-{uuid.uuid4().hex[:8]}"
    allocations, metrics = [], []
    for server_id in servers:
        allocations += [
            ServerAllocated(
                source="test", server_id=server_id, endpoint="127.0.0.1:1", metrics_url="http://127.0.0.1:2/metrics",
                region=REGION, gpu_type=gpu_type, gpu_count=1, cost_per_hour=ON_DEMAND,
            ),
            ModelLoaded(source="test", server_id=server_id, model_id=model, region=REGION),
        ]  # fmt: skip
        metrics.append(
            ServerMetricsReported(
                source="test", server_id=server_id, model_id=model, region=REGION, gpu_type=gpu_type, window_s=60.0,
                utilization=0.85, utilization_derived=True,
            )
        )  # fmt: skip
    await produce_raw(bootstrap, ALLOCATIONS.name, [e.model_dump_json().encode() for e in allocations])
    await produce_raw(bootstrap, SERVER_METRICS.name, [e.model_dump_json().encode() for e in metrics])


async def audit(allocator, **where) -> list[dict]:
    async with allocator.runtime.sessions() as session:
        query = select(capacity_change).where(*(getattr(capacity_change.c, k) == v for k, v in where.items()))
        return [dict(r._mapping) for r in (await session.execute(query)).all()]


async def gpu_classes(allocator, gpu_type: str) -> dict[str, int]:
    async with allocator.runtime.sessions() as session:
        rows = await session.execute(
            select(gpu.c.pricing_class, func.count()).where(gpu.c.gpu_type == gpu_type).group_by(gpu.c.pricing_class)
        )
        return {str(r[0]): int(r[1]) for r in rows}


async def test_cost_apply_changes_the_next_report_once(cost_app, allocator, kafka_bootstrap, gpu_type):
    try:
        await _scenario(cost_app, allocator, kafka_bootstrap, gpu_type)
    finally:
        async with cost_app.runtime.sessions.begin() as session:
            await session.execute(delete(pool_capacity).where(pool_capacity.c.gpu_type == gpu_type))


async def _scenario(cost_app, allocator, kafka_bootstrap, gpu_type) -> None:
    servers = await running_servers(allocator, gpu_type)
    await tell_the_cost_service(kafka_bootstrap, servers, gpu_type)

    async def all_recorded() -> bool:
        # The "before" report must price every server: a cycle run with some of them recorded
        # would recommend (once) on partial evidence.
        async with cost_app.runtime.sessions() as session:
            known = select(func.count()).select_from(fleet_server).where(fleet_server.c.server_id.in_(servers))
            busy = (
                select(func.count()).select_from(server_utilization).where(server_utilization.c.server_id.in_(servers))
            )
            return (await session.execute(known)).scalar_one() == (await session.execute(busy)).scalar_one() == SERVERS

    assert await wait_for(all_recorded, timeout=60, interval=0.5)

    async def reserved_recommended():
        result = await cost_app.cycle_once()
        found = [e for e in (result.announced if result else []) if e.gpu_type == gpu_type and e.kind == "reserved"]
        return (result, found[0]) if found else None

    found = await wait_for(reserved_recommended, timeout=60, interval=1.0)
    assert found is not None
    before, reserved = found
    assert before.report.by_gpu_type_per_hour[gpu_type] == pytest.approx(SERVERS * ON_DEMAND)
    listed = await cli.recommendations(cost_app.runtime.sessions)
    assert reserved.recommendation_id in {r["recommendation_id"] for r in listed if r["status"] == "open"}

    shown: list[list[str]] = []
    done = await cli.apply(
        cost_app.runtime.sessions, reserved.recommendation_id, lambda lines: shown.append(lines) or True
    )
    assert done.outcome == "applied", done.message
    assert any("-3 on_demand, +3 reserved GPUs (12-month commitment)" in line for line in shown[0])
    request_id = done.requests[0]["request_id"]
    cost_app.relay.notify()

    async def priced_reserved():
        rows = await audit(allocator, request_id=request_id)
        result = await cost_app.cycle_once() if rows else None
        if result is None or result.report.by_pricing_class_per_hour.get("reserved", 0) < 3 * RESERVED - 1e-6:
            return None
        return rows, result

    changed = await wait_for(priced_reserved, timeout=60, interval=1.0)
    assert changed is not None, "the applied commitment never reached the report"
    rows, after = changed
    assert [r["result"] for r in rows] == ["applied"] and rows[0]["recommendation_id"] == reserved.recommendation_id
    assert rows[0]["applied"]["converted"] == {"on_demand->reserved": 3} and len(rows[0]["applied"]["repriced"]) == 3
    expected = 3 * RESERVED + (SERVERS - 3) * ON_DEMAND
    assert after.report.by_gpu_type_per_hour[gpu_type] == pytest.approx(expected)
    assert after.report.capacity_by_pool[f"{REGION}/{gpu_type}"] == {"on_demand": 5, "spot": 0, "reserved": 3}
    assert after.report.committed_per_hour >= 3 * RESERVED - 1e-6
    assert await gpu_classes(allocator, gpu_type) == {"on_demand": 5, "reserved": 3}

    # Applying again sends nothing; the same request sent again (a new event) changes nothing either.
    again = await cli.apply(cost_app.runtime.sessions, reserved.recommendation_id, lambda lines: True)
    assert again.outcome == "already_applied" and again.requests[0]["request_id"] == request_id
    resent = CapacityChangeRequested.model_validate(done.requests[0] | {"event_id": str(uuid.uuid4())})
    refused = CapacityChangeRequested(
        source="test", request_id=f"req-{uuid.uuid4().hex[:8]}", recommendation_id="rightsize-test", region=REGION,
        gpu_type=gpu_type, changes={"on_demand": -6}, reason="more than are free",
    )  # fmt: skip
    key = f"{REGION}:{gpu_type}".encode()  # one partition: the re-send is handled before the refused one
    await produce_raw(
        kafka_bootstrap, SCALING_ACTIONS.name, [e.model_dump_json().encode() for e in (resent, refused)], key=key
    )
    assert await wait_for(lambda: audit(allocator, request_id=refused.request_id), timeout=60)
    (refusal,) = await audit(allocator, request_id=refused.request_id)
    assert refusal["result"] == "refused"
    assert refusal["reason"] == (
        "releasing 6 on_demand GPUs: only 3 are free; GPUs a running server holds are never released"
    )
    assert len(await audit(allocator, request_id=request_id)) == 1
    assert await gpu_classes(allocator, gpu_type) == {"on_demand": 5, "reserved": 3}
    final = await cost_app.cycle_once()
    assert final is not None
    assert final.report.by_gpu_type_per_hour[gpu_type] == pytest.approx(expected)  # changed once


def test_cost_apply_exits_non_zero_with_a_clear_message_for_unknown_and_withdrawn_ids(database_url):
    from datetime import UTC, datetime

    from typer.testing import CliRunner

    from llmfleet.cli import app
    from services.cost.adapters.orm import recommendation

    url, rec_id = database_url("cost"), f"spot-test{uuid.uuid4().hex[:12]}"
    now = datetime.now(UTC)

    async def withdrawn(add: bool) -> None:
        from sqlalchemy.ext.asyncio import create_async_engine

        engine = create_async_engine(url)
        async with engine.begin() as connection:
            if add:
                await connection.execute(
                    recommendation.insert().values(
                        recommendation_id=rec_id, key=f"spot:{rec_id}", kind="spot", region=REGION, gpu_type="x",
                        summary="test", savings_per_month=1.0, action={}, evidence={}, status="withdrawn",
                        created_at=now, updated_at=now,
                    )
                )  # fmt: skip
            else:
                await connection.execute(delete(recommendation).where(recommendation.c.recommendation_id == rec_id))
        await engine.dispose()

    runner = CliRunner()
    unknown = runner.invoke(app, ["cost", "apply", "spot-nosuchid", "--yes", "--database-url", url])
    assert unknown.exit_code == cli.UNKNOWN and "no recommendation spot-nosuchid" in unknown.output
    asyncio.run(withdrawn(True))
    try:
        gone = runner.invoke(app, ["cost", "apply", rec_id, "--yes", "--database-url", url])
        assert gone.exit_code == cli.NOT_OPEN and f"{rec_id} is withdrawn, not open" in gone.output
        listed = runner.invoke(app, ["cost", "recommendations", "-o", "json", "--database-url", url])
        assert listed.exit_code == 0 and rec_id not in listed.output  # only open and applied are listed
    finally:
        asyncio.run(withdrawn(False))
