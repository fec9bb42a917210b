"""Monthly budgets on real PostgreSQL and Kafka: one count across replicas, set by the CLI, metered for chargeback."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import openai
import pytest
from openai import AsyncOpenAI
from sqlalchemy import delete, select
from typer.testing import CliRunner

from llmfleet.cli import app as cli
from services.cost.adapters.orm import cost_report
from services.cost.app import create_app as create_cost
from services.cost.app import migrate as migrate_cost
from services.cost.jobs import CostApp
from services.cost.settings import CostSettings
from services.gateway.adapters.orm import budget_month
from services.gateway.domain.budgets import month_of, usd_to_nanos
from services.gateway.domain.limits import Limits
from shared.events import USAGE
from tests.integration.gateway.conftest import Keys, Replica
from tests.integration.helpers import running, start_group_at_end, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

# The tests' gateways price every model at the default $0.002 per 1,000 tokens: 2,000 nano-dollars a token.
PER_TOKEN = usd_to_nanos(0.002) // 1000


def cli_run(*args: str, database_url: str) -> str:
    wide = {"COLUMNS": "250"}  # rich cuts table cells to the terminal's width
    result = CliRunner(env=wide).invoke(cli, [*args, "--database-url", database_url], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def tenant_of(keys: Keys, secret: str) -> tuple[str, str]:
    record = next(k for k in keys.list() if secret.startswith(k.prefix))
    return record.tenant.tenant_id, record.tenant.name


async def test_concurrent_requests_on_two_replicas_cannot_spend_past_the_budget(
    replicas: list[Replica], keys: Keys
) -> None:
    # Each echo call reserves and uses 20 tokens (10 prompt + 10 generated): the budget holds exactly 5.
    budget = 5 * 20 * PER_TOKEN
    secret = keys.new(tenant_limits=Limits(monthly_budget=budget))
    clients = [AsyncOpenAI(base_url=r.base_url, api_key=secret, max_retries=0, timeout=60) for r in replicas]

    async def one(n: int) -> object:
        return await clients[n % 2].completions.create(model="echo", prompt="0123456789", max_tokens=10)

    try:
        outcomes = await asyncio.gather(*(one(n) for n in range(16)), return_exceptions=True)
    finally:
        for c in clients:
            await c.close()
    served = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, openai.RateLimitError)]
    assert len(served) == 5 and len(refused) == 11, outcomes
    assert all(e.code == "budget_exceeded" and e.type == "insufficient_quota" for e in refused)
    assert refused[0].response.headers["x-should-retry"] == "false"
    tenant_id, _ = tenant_of(keys, secret)

    async def spent() -> int:
        async with replicas[0].app.runtime.sessions() as session:
            query = select(budget_month.c.spent_nanos).where(
                budget_month.c.subject == f"tenant:{tenant_id}",
                budget_month.c.month_start == month_of(datetime.now(UTC)),
            )
            return int((await session.execute(query)).scalar_one())

    assert keys.host.call(spent()) == budget  # settled: exactly the five served calls' cost


def test_budgets_are_set_with_the_cli_and_refuse_with_insufficient_quota(
    replicas: list[Replica], gateway_database: str
) -> None:
    tenant = f"budget-{uuid.uuid4().hex[:8]}"
    cli_run("tenants", "create", tenant, "--monthly-budget", "1000", database_url=gateway_database)
    out = cli_run("keys", "create", tenant, "--monthly-budget", "0.00008", database_url=gateway_database)
    client = openai.OpenAI(base_url=replicas[0].base_url, api_key=out.strip().splitlines()[-1], max_retries=0)
    for _ in range(2):  # 2 x 20 tokens x $0.000002 = $0.00008: the key's budget, exactly
        client.completions.create(model="echo", prompt="0123456789", max_tokens=10)
    with pytest.raises(openai.RateLimitError) as raised:
        client.completions.create(model="echo", prompt="x", max_tokens=1)
    assert raised.value.code == "budget_exceeded" and "API key" in str(raised.value)
    listed = cli_run("keys", "list", "--tenant", tenant, database_url=gateway_database)
    assert "$0.00008" in listed
    # The tenant's budget below what it has spent: its next call is refused whichever key makes it.
    cli_run("tenants", "update", tenant, "--monthly-budget", "0.00001", database_url=gateway_database)
    assert "$0.00001" in cli_run("tenants", "list", database_url=gateway_database)
    other = cli_run("keys", "create", tenant, "--name", "other", database_url=gateway_database)
    second = openai.OpenAI(base_url=replicas[1].base_url, api_key=other.strip().splitlines()[-1], max_retries=0)
    with pytest.raises(openai.RateLimitError) as raised:
        second.completions.create(model="echo", prompt="x", max_tokens=1)
    assert raised.value.code == "budget_exceeded" and "organization" in str(raised.value)


@asynccontextmanager
async def cost_service(kafka_bootstrap: str, url: str) -> AsyncIterator[CostApp]:
    """A cost service reading only what is metered from now on (its report cycle left to the test)."""
    settings = CostSettings(
        kafka_bootstrap=kafka_bootstrap,
        database_url=url,
        consumer_group=f"test-cost-usage-{uuid.uuid4().hex[:8]}",
        report_interval_s=3600.0,
    )
    await asyncio.to_thread(migrate_cost, settings)
    await start_group_at_end(kafka_bootstrap, settings.group_id, USAGE.name)
    _app, cost = create_cost(settings)
    async with running(cost.runtime.broker):
        yield cost
    await cost.runtime.close()


def test_usage_reaches_the_cost_service_and_cost_tenants_shows_it(
    replicas: list[Replica], keys: Keys, kafka_bootstrap: str, database_url
) -> None:
    cost_url = database_url("cost")
    running_cost = cost_service(kafka_bootstrap, cost_url)
    cost = keys.host.call(running_cost.__aenter__())
    report_id = f"test-usage-{uuid.uuid4().hex[:8]}"

    async def price_echo(rate: float | None) -> None:
        # The newest report (dated ahead of any real cycle's) gives echo a known cost per 1,000 tokens.
        async with cost.runtime.sessions.begin() as session:
            if rate is None:
                await session.execute(delete(cost_report).where(cost_report.c.report_id == report_id))
                return
            body = {"report": {"per_1k_tokens": {"echo": rate}}, "servers": [], "region_plans": {}}
            later = datetime.now(UTC) + timedelta(hours=1)
            await session.execute(
                cost_report.insert().values(
                    report_id=report_id, trigger="test", created_at=later, total_per_hour=0.0, body=body
                )
            )

    keys.host.call(price_echo(0.5))
    try:
        secret = keys.new(tenant_limits=Limits(monthly_budget=usd_to_nanos(1.0)))
        _, tenant = tenant_of(keys, secret)
        for replica in replicas:  # both replicas meter; the cost service adds their periods
            openai.OpenAI(base_url=replica.base_url, api_key=secret, max_retries=0).completions.create(
                model="echo", prompt="0123456789", max_tokens=10
            )
        for replica in replicas:
            keys.host.call(replica.app.ledger.flush())
        # One meter for the cluster: whichever replica flushes takes every replica's rows, once.
        assert sum(keys.host.call(replica.app.publish_usage()) for replica in replicas) >= 1

        def shown() -> list[dict]:
            out = cli_run("cost", "tenants", "--tenant", tenant, "-o", "json", database_url=cost_url)
            rows = json.loads(out)
            return rows if rows and rows[0]["requests"] == 2 else []

        rows = keys.host.call(wait_for(lambda: asyncio.to_thread(shown), timeout=30))
        assert rows, "the metered usage did not reach the cost service"
        [row] = rows
        assert (row["model_id"], row["tokens"], row["prompt_tokens"], row["failed"]) == ("echo", 40, 20, 0)
        assert row["billed_usd"] == pytest.approx(40 * 0.002 / 1000)  # the gateway's price
        assert row["cost_usd"] == pytest.approx(40 * 0.5 / 1000) and row["unpriced_tokens"] == 0  # the fleet's
        assert row["day"] == datetime.now(UTC).date().isoformat()
        table = cli_run("cost", "tenants", "--tenant", tenant, database_url=cost_url)
        assert tenant in table and "0.020000" in table
    finally:
        keys.host.call(price_echo(None))
        keys.host.call(running_cost.__aexit__(None, None, None))
