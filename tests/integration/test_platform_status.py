"""`llmfleet status` on the real PostgreSQL: each service's rows show up; what is missing gives notes.

The database is shared with other tests and runs, so each test seeds rows with its own ids, looks
only for them, and deletes them afterwards.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, start_http_server
from rich.console import Console
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from deploy.local import postgres
from llmfleet.status import platform_status, render_platform_status
from services.allocator.adapters.orm import placement, server
from services.cost.adapters.orm import cost_report, recommendation
from services.monitor.adapters.orm import alert_state
from services.router.adapters.metrics import router_metrics
from services.scaler.adapters.orm import model_tier, scaling_action
from shared.migrations import upgrade
from tests.support.databases import SERVICES_DIR

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

SEEDED = ("allocator", "scaler", "monitor", "cost")


async def _execute(url: str, *statements: Any) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            for statement in statements:
                await connection.execute(statement)
    finally:
        await engine.dispose()


def _rows(uid: str, now: datetime) -> dict[str, list[Any]]:
    """Insert statements per service: a live and a released server, tiers, actions, alerts, cost."""
    live, gone, model, region = f"st-srv-{uid}", f"st-gone-{uid}", f"st-model-{uid}", f"st-region-{uid}"
    srv = {"gpu_type": "a100_80gb", "gpu_count": 2, "cost_per_hour": 8.2, "pricing_class": "on_demand"}
    action = {
        "model_id": model,
        "region": region,
        "current_instances": 1,
        "priority": "normal",
        "policy": "hybrid",
        "tier": "hot",
        "forecast_rph": 900.0,
        "confidence": 0.8,
        "reason": "test",
    }
    alert = {"severity": "high", "scope": {"server_id": live}, "value": 0.97, "updated_at": now}
    rec = {"kind": "rightsize", "summary": "test", "action": {}, "evidence": {}, "created_at": now, "updated_at": now}
    body = {"report": {"by_region_per_hour": {region: 8.2}, "by_model_per_hour": {model: 8.2}}}
    return {
        "allocator": [
            server.insert().values(server_id=live, region=region, state="running", endpoint="127.0.0.1:1", **srv),
            server.insert().values(server_id=gone, region=region, state="released", **srv),
            placement.insert().values(
                server_id=live, model_id=model, triton_model="tinylm", instances=2, state="ready"
            ),
            placement.insert().values(
                server_id=gone, model_id=model, triton_model="tinylm", instances=5, state="ready"
            ),
        ],
        "scaler": [
            model_tier.insert().values(
                model_id=model, tier="hot", requests_per_hour=900.0, changed_at=now, evaluated_at=now
            ),
            scaling_action.insert().values(
                action_id=f"st-old-{uid}",
                kind="scale_up",
                target_instances=2,
                rule="forecast",
                status="done",
                requested_at=now - timedelta(minutes=5),
                **action,
            ),
            scaling_action.insert().values(
                action_id=f"st-new-{uid}",
                kind="scale_up",
                target_instances=3,
                rule="utilization",
                status="pending",
                requested_at=now,
                **action,
            ),
        ],
        "monitor": [
            alert_state.insert().values(rule=f"st-firing-{uid}", scope_key=live, phase="firing", fired_at=now, **alert),
            alert_state.insert().values(rule=f"st-pending-{uid}", scope_key=live, phase="pending", since=now, **alert),
        ],
        "cost": [
            # Dated ahead, so it is the latest report even while other runs write theirs (deleted after).
            cost_report.insert().values(
                report_id=f"st-report-{uid}",
                trigger="on_demand",
                created_at=now + timedelta(minutes=10),
                total_per_hour=8.2,
                body=body,
            ),
            recommendation.insert().values(
                recommendation_id=f"st-open-{uid}", key=f"st-{uid}-1", status="open", savings_per_month=1000.0, **rec
            ),
            recommendation.insert().values(
                recommendation_id=f"st-applied-{uid}",
                key=f"st-{uid}-2",
                status="applied",
                savings_per_month=5.0,
                **rec,
            ),
        ],
    }


def _cleanup(uid: str) -> dict[str, list[Any]]:
    like = f"st-%{uid}"
    return {
        "allocator": [
            placement.delete().where(placement.c.server_id.like(like)),
            server.delete().where(server.c.server_id.like(like)),
        ],
        "scaler": [
            scaling_action.delete().where(scaling_action.c.action_id.like(like)),
            model_tier.delete().where(model_tier.c.model_id.like(like)),
        ],
        "monitor": [alert_state.delete().where(alert_state.c.rule.like(like))],
        "cost": [
            cost_report.delete().where(cost_report.c.report_id.like(like)),
            recommendation.delete().where(recommendation.c.recommendation_id.like(like)),
        ],
    }


@pytest.fixture
async def seeded(database_url) -> AsyncIterator[str]:
    """Migrate the four services' schemas, seed rows with a fresh id, delete them afterwards."""
    for service in SEEDED:
        await asyncio.to_thread(upgrade, SERVICES_DIR / service / "migrations", database_url(service), service)
    uid = uuid.uuid4().hex[:10]
    inserts = _rows(uid, datetime.now(UTC))
    try:
        await asyncio.gather(*(_execute(database_url(s), *inserts[s]) for s in SEEDED))
        yield uid
    finally:
        cleanup = _cleanup(uid)
        await asyncio.gather(*(_execute(database_url(s), *cleanup[s]) for s in SEEDED))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def router_endpoint() -> Iterator[tuple[str, Any]]:
    """A real Prometheus endpoint serving the router's own metrics (built by its factory)."""
    registry = CollectorRegistry()
    metrics = router_metrics(registry)
    httpd, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    yield f"http://127.0.0.1:{httpd.server_port}/metrics", metrics
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


async def test_status_shows_each_services_rows(seeded: str, database_url) -> None:
    uid = seeded
    status = await platform_status(database_url)
    servers = {s["server_id"]: s for s in status["servers"]}
    assert servers[f"st-srv-{uid}"]["models"] == {f"st-model-{uid}": 2}
    assert servers[f"st-srv-{uid}"]["cost_per_hour"] == 8.2
    assert f"st-gone-{uid}" not in servers  # released servers are history, not the fleet
    model = next(m for m in status["models"] if m["model_id"] == f"st-model-{uid}")
    assert model["tier"] == "hot" and model["requests_per_hour"] == 900.0
    assert model["instances"] == {f"st-region-{uid}": 2}  # the released server's 5 do not count
    assert model["last_action"]["target"] == 3 and model["last_action"]["status"] == "pending"
    rules = {a["rule"] for a in status["alerts"]}
    assert f"st-firing-{uid}" in rules and f"st-pending-{uid}" not in rules
    cost = status["cost"]
    assert cost["report_id"] == f"st-report-{uid}" and cost["total_per_hour"] == 8.2
    assert cost["by_region_per_hour"] == {f"st-region-{uid}": 8.2}
    assert cost["open_recommendations"] >= 1 and cost["open_savings_per_month"] >= 1000.0
    assert status["queues"] == [] and any("no router metrics URL" in n for n in status["notes"])
    assert [s["server_id"] for s in status["servers"]] == sorted(servers)

    console = Console(record=True, width=160)
    render_platform_status(console, status)
    out = console.export_text()
    assert f"st-srv-{uid}" in out and f"st-model-{uid}" in out and f"st-firing-{uid}" in out
    assert "Cost: 8.20 $/h" in out


async def test_router_queues_come_from_its_metrics_endpoint(router_endpoint, database_url) -> None:
    url, metrics = router_endpoint
    model = f"st-model-{uuid.uuid4().hex[:10]}"
    metrics.queue_depth.labels(model).set(7)
    status = await platform_status(database_url, url)
    assert {"model_id": model, "depth": 7} in status["queues"]
    assert not any("router" in n for n in status["notes"])


async def test_an_unreachable_router_endpoint_is_a_note(database_url) -> None:
    url = f"http://127.0.0.1:{_free_port()}/metrics"
    status = await platform_status(database_url, url)
    assert status["queues"] == []
    assert any(url in note and "did not answer" in note for note in status["notes"])


async def test_a_database_that_refuses_is_a_note_per_service(database_url) -> None:
    status = await platform_status(lambda service: database_url(service).replace(f":{service}-local@", ":wrong@"))
    assert status["servers"] == status["models"] == status["alerts"] == []
    for service in SEEDED:
        assert any(n.startswith(f"{service}: database unavailable (InvalidPasswordError") for n in status["notes"])


def _admin_url(postgres_info: dict[str, Any], database: str) -> str:
    if admin := os.environ.get("LLMFLEET_TEST_POSTGRES_ADMIN_URL"):
        from sqlalchemy.engine import make_url

        return make_url(admin).set(drivername="postgresql+asyncpg", database=database).render_as_string(False)
    password = postgres.role_password("admin")
    return f"postgresql+asyncpg://{postgres.SUPERUSER}:{password}@{postgres_info['host']}:{postgres_info['port']}/{database}"


async def test_a_fresh_database_gives_notes_and_empty_sections(postgres_info) -> None:
    fresh = f"st_fresh_{uuid.uuid4().hex[:10]}"
    admin = create_async_engine(_admin_url(postgres_info, "postgres"), isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(text(f"create database {fresh}"))
    try:
        info = dict(postgres_info, database=fresh)
        status = await platform_status(lambda service: postgres.database_url(service, info))
    finally:
        async with admin.connect() as connection:
            await connection.execute(text(f"drop database {fresh} with (force)"))
        await admin.dispose()
    assert status["servers"] == status["models"] == status["alerts"] == status["queues"] == []
    assert status["cost"]["total_per_hour"] is None and status["cost"]["open_recommendations"] == 0
    for service in SEEDED:
        assert f"{service}: tables not migrated yet" in status["notes"]
    render_platform_status(Console(record=True, width=160), status)
