"""Budget alerts on real Kafka and PostgreSQL: a tenant's metered spend crossing 80% and 100% of its budget."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from shared.events import ALERTS, USAGE, UsageMetered
from tests.integration.monitor.support import publish, read, running_monitor

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

RULES = ("tenant_budget_80", "tenant_budget_100")
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


def metered(
    tenant_id: str, minute: int, month_spend: float, budget: float | None = 100.0, refused: int = 0
) -> UsageMetered:
    end = T0 + timedelta(minutes=minute)
    return UsageMetered(
        source="test", tenant_id=tenant_id, tenant=f"name-{tenant_id}", model_id="echo",
        period_start=end - timedelta(minutes=1), period_end=end, requests=10, prompt_tokens=100,
        completion_tokens=100, spend_usd=1.0, month_spend_usd=month_spend, monthly_budget_usd=budget,
        budget_refused=refused,
    )  # fmt: skip


async def test_crossing_80_and_100_percent_fires_each_alert_once_and_a_raised_budget_resolves_them(
    monitor_settings,
):
    tenant_id, bootstrap = f"tenant-{uuid.uuid4().hex[:8]}", monitor_settings.kafka_bootstrap
    # 50%, 85%, 90%, 97% with requests refused over the budget (used up: its worst case would pass it),
    # then the budget raised to 1,000 (9.7%): each alert fires once and resolves once.
    spends = [(0, 50.0, 100.0, 0), (1, 85.0, 100.0, 0), (2, 90.0, 100.0, 0), (3, 97.0, 100.0, 2), (4, 97.0, 1000.0, 0)]
    events = [metered(tenant_id, m, spend, budget, refused) for m, spend, budget, refused in spends]
    events.append(metered(tenant_id, 5, 0.0, None))  # a tenant without a budget: nothing to judge
    async with running_monitor(monitor_settings):
        await publish(bootstrap, USAGE, tenant_id, *events)
        alerts = await read(bootstrap, ALERTS, {"scope.tenant_id": tenant_id}, count=4)
    # Alerts are keyed by alert id, so each rule's firing and resolved share a partition (in order);
    # the two rules' alerts may arrive interleaved either way.
    by_rule = {rule: [(a["severity"], a["state"], a["value"]) for a in alerts if a["rule"] == rule] for rule in RULES}
    assert by_rule == {
        "tenant_budget_80": [("high", "firing", 0.85), ("high", "resolved", 0.097)],
        "tenant_budget_100": [("critical", "firing", 1.0), ("critical", "resolved", 0.097)],
    }
    assert alerts[0]["scope"] == {"tenant_id": tenant_id, "tenant": f"name-{tenant_id}"}
