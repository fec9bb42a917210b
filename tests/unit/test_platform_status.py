"""`llmfleet status` assembly: sections from rows, the router's queue gauge, the cost line."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest

from llmfleet.status.model import (
    alerts_section,
    cost_section,
    instances_by_model,
    jsonable,
    models_section,
    queues_section,
    servers_section,
)
from llmfleet.status.render import cost_line
from services.router.adapters.metrics import router_metrics

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def server(server_id: str, region: str = "us-east-1") -> dict:
    return {
        "server_id": server_id,
        "region": region,
        "gpu_type": "a100_80gb",
        "gpu_count": 2,
        "pricing_class": "on_demand",
        "cost_per_hour": 8.2,
        "state": "running",
        "endpoint": "127.0.0.1:8000",
        "metrics_url": "ignored",
    }


def placement(server_id: str, model_id: str, instances: int) -> dict:
    return {"server_id": server_id, "model_id": model_id, "instances": instances, "state": "ready"}


def action(model_id: str, at: datetime, kind: str = "scale_up") -> dict:
    return {
        "model_id": model_id,
        "region": "us-east-1",
        "kind": kind,
        "target_instances": 3,
        "status": "pending",
        "rule": "utilization",
        "requested_at": at,
    }


def test_servers_are_sorted_and_carry_their_models() -> None:
    rows = servers_section([server("s-b"), server("s-a")], [placement("s-a", "m2", 1), placement("s-a", "m1", 2)])
    assert [r["server_id"] for r in rows] == ["s-a", "s-b"]
    assert rows[0]["models"] == {"m1": 2, "m2": 1}
    assert rows[1]["models"] == {}
    assert "metrics_url" not in rows[0]


def test_each_instance_shows_the_deployment_plan_it_runs() -> None:
    planned = placement("s-a", "m1", 2) | {"strategy": "single", "quantisation": "int8", "plan_gpus": 1}
    (row,) = servers_section([server("s-a")], [planned, placement("s-a", "m2", 1)])
    assert row["plans"] == {"m1": "int8 single on 1 GPU"}  # m2 has no plan on record: none shown


def test_instances_count_only_live_servers_and_sum_per_region() -> None:
    servers = [server("a", "us-east-1"), server("b", "us-east-1"), server("c", "eu-west-1")]
    placements = [placement("a", "m", 1), placement("b", "m", 2), placement("c", "m", 1), placement("gone", "m", 5)]
    assert instances_by_model(servers, placements) == {"m": {"eu-west-1": 1, "us-east-1": 3}}


def test_models_join_tiers_placements_and_the_latest_action() -> None:
    tiers = [{"model_id": "hot", "tier": "hot", "requests_per_hour": 900.0, "changed_at": T0}]
    rows = models_section(tiers, {"placed-only": {"us-east-1": 1}}, [action("hot", T0)])
    assert [r["model_id"] for r in rows] == ["hot", "placed-only"]
    assert rows[0]["tier"] == "hot" and rows[0]["instances"] == {}
    assert rows[0]["last_action"]["target"] == 3
    assert rows[1]["tier"] is None and rows[1]["last_action"] is None
    assert rows[1]["instances"] == {"us-east-1": 1}


def test_alerts_sorted_by_rule_then_scope() -> None:
    def state(rule: str, scope_key: str) -> dict:
        return {"rule": rule, "scope_key": scope_key, "scope": {"k": scope_key}, "severity": "high"}

    rows = alerts_section(
        [s | {"value": 1.0, "fired_at": T0} for s in (state("b", "1"), state("a", "2"), state("a", "1"))]
    )
    assert [(r["rule"], r["scope"]["k"]) for r in rows] == [("a", "1"), ("a", "2"), ("b", "1")]


def test_cost_from_the_report_body_and_no_report_yet() -> None:
    body = {"report": {"by_region_per_hour": {"z": 1.0, "a": 2.0}, "by_model_per_hour": {"m": 3.0}}}
    report = {"report_id": "r1", "created_at": T0, "total_per_hour": 3.0, "body": body}
    cost = cost_section(report, 2, 150.456)
    assert list(cost["by_region_per_hour"]) == ["a", "z"]
    assert cost["open_recommendations"] == 2 and cost["open_savings_per_month"] == 150.46
    assert "3.00 $/h" in cost_line(cost) and "2 open recommendations" in cost_line(cost)
    empty = cost_section(None, 0, None)
    assert empty["total_per_hour"] is None and empty["open_savings_per_month"] == 0.0
    assert cost_line(empty).startswith("Cost: no report yet; 0 open recommendations")


def test_queues_read_from_the_routers_own_gauge() -> None:
    registry = CollectorRegistry()
    metrics = router_metrics(registry)
    metrics.queue_depth.labels("m-b").set(4)
    metrics.queue_depth.labels("m-a").set(0)
    metrics.inflight_batches.set(7)
    text = generate_latest(registry).decode()
    assert queues_section(text) == [{"model_id": "m-a", "depth": 0}, {"model_id": "m-b", "depth": 4}]


def test_jsonable_turns_timestamps_into_iso_strings() -> None:
    out = jsonable({"a": [{"at": T0}], "b": (1, None)})
    assert out == {"a": [{"at": T0.isoformat()}], "b": [1, None]}
    json.dumps(out)


@given(
    st.lists(st.tuples(st.sampled_from("abcd"), st.sampled_from("xyz"), st.integers(0, 8)), max_size=20),
    st.sets(st.sampled_from("abcd")),
)
def test_instances_total_is_the_placements_on_live_servers(rows: list, live: set) -> None:
    placements = {(s, m): n for s, m, n in rows}  # (server, model) is the placement's key
    servers = [server(s, region=f"r-{s}") for s in live]
    result = instances_by_model(servers, [placement(s, m, n) for (s, m), n in placements.items()])
    expected = sum(n for (s, _), n in placements.items() if s in live)
    assert sum(sum(by_region.values()) for by_region in result.values()) == expected


def test_render_keeps_bracketed_text_as_text() -> None:
    from rich.console import Console

    from llmfleet.status.render import render_platform_status

    status = {
        "servers": [servers_section([server("srv-[x]")], [placement("srv-[x]", "m", 1)])[0]],
        "models": [],
        "queues": [{"model_id": "m", "depth": 2}],
        "alerts": [],
        "cost": cost_section(None, 0, None),
        "notes": ["monitor: database unavailable ([Errno 111] refused)"],
    }
    console = Console(record=True, width=160)
    render_platform_status(console, status)
    out = console.export_text()
    assert "srv-[x]" in out and "[Errno 111] refused" in out and "m x1" in out
