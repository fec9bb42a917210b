"""The fleet tables: scrape targets and their models, prices, alert rules and signal cooldowns."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.monitor.adapters.orm import alert_rule, price, scrape_target, server_model, signal_state
from services.monitor.adapters.sql import in_text_array
from services.monitor.domain.cost import Price
from services.monitor.domain.fleet import Target
from services.monitor.domain.rules import AlertRule, Direction, Metric
from shared.events import PricesPublished, ServerAllocated, Severity


class FleetTables:
    """SQL of the fleet as the monitor sees it (part of the SQL repository; the caller owns the transaction)."""

    _session: AsyncSession

    async def upsert_target(self, event: ServerAllocated) -> None:
        """Start (or keep) scraping a server; a re-allocation updates its address and price."""
        values = {
            "endpoint": event.endpoint,
            "metrics_url": event.metrics_url,
            "region": event.region,
            "gpu_type": event.gpu_type,
            "gpu_count": event.gpu_count,
            "cost_per_hour": event.cost_per_hour,
            "pricing_class": event.pricing_class,
            "allocated_at": event.occurred_at,
        }
        statement = insert(scrape_target).values(server_id=event.server_id, consecutive_failures=0, **values)
        await self._session.execute(statement.on_conflict_do_update(index_elements=["server_id"], set_=values))

    async def remove_target(self, server_id: str) -> None:
        """Stop scraping a released server and forget its models."""
        await self._session.execute(delete(server_model).where(server_model.c.server_id == server_id))
        await self._session.execute(delete(scrape_target).where(scrape_target.c.server_id == server_id))

    async def set_model(self, server_id: str, model_id: str, triton_model: str, region: str) -> None:
        """Record that a server holds a model."""
        statement = insert(server_model).values(
            server_id=server_id, model_id=model_id, triton_model=triton_model, region=region
        )
        await self._session.execute(
            statement.on_conflict_do_update(
                index_elements=["server_id", "model_id"], set_={"triton_model": triton_model}
            )
        )

    async def unset_model(self, server_id: str, model_id: str) -> None:
        """Record that a server no longer holds a model."""
        await self._session.execute(
            delete(server_model).where(server_model.c.server_id == server_id, server_model.c.model_id == model_id)
        )

    async def load_targets(self) -> list[Target]:
        """Every known server with the models it holds."""
        models: dict[str, dict[str, str]] = {}
        for row in await self._session.execute(select(server_model)):
            models.setdefault(row.server_id, {})[row.triton_model] = row.model_id
        rows = await self._session.execute(select(scrape_target).order_by(scrape_target.c.server_id))
        return [
            Target(
                server_id=r.server_id,
                metrics_url=r.metrics_url,
                region=r.region,
                gpu_type=r.gpu_type,
                gpu_count=r.gpu_count,
                cost_per_hour=r.cost_per_hour,
                pricing_class=r.pricing_class,
                consecutive_failures=r.consecutive_failures,
                models=models.get(r.server_id, {}),
            )
            for r in rows
        ]

    async def record_scrapes(self, failures: dict[str, int], errors: dict[str, str | None], at: datetime) -> None:
        """Store each target's failed-in-a-row count and last error (one statement for all)."""
        if not failures:
            return
        statement = (
            update(scrape_target)
            .where(scrape_target.c.server_id == bindparam("sid"))
            .values(consecutive_failures=bindparam("failures"), last_error=bindparam("error"), last_scraped_at=at)
        )
        rows = [{"sid": s, "failures": n, "error": (errors.get(s) or None)} for s, n in failures.items()]
        connection = await self._session.connection()
        await connection.execute(statement, rows)  # executemany: one round trip for every target

    async def upsert_prices(self, event: PricesPublished) -> None:
        """Replace the prices the event lists (others stay as they were)."""
        for p in event.prices:
            values = {
                "on_demand_per_hour": p.on_demand_per_hour,
                "spot_per_hour": p.spot_per_hour,
                "reserved_per_hour": p.reserved_per_hour,
                "published_at": event.occurred_at,
            }
            statement = insert(price).values(region=p.region, gpu_type=p.gpu_type, **values)
            await self._session.execute(
                statement.on_conflict_do_update(index_elements=["region", "gpu_type"], set_=values)
            )

    async def load_prices(self) -> dict[tuple[str, str], Price]:
        """The latest price list, by (region, gpu type)."""
        rows = await self._session.execute(select(price))
        return {(r.region, r.gpu_type): Price(r.on_demand_per_hour, r.spot_per_hour, r.reserved_per_hour) for r in rows}

    async def load_rules(self) -> list[AlertRule]:
        """The operators' rules table."""
        rows = await self._session.execute(select(alert_rule).order_by(alert_rule.c.name))
        return [
            AlertRule(
                r.name,
                Metric(r.metric),
                Direction(r.direction),
                r.threshold,
                Severity(r.severity),
                r.for_s,
                r.hysteresis,
                r.enabled,
            )
            for r in rows
        ]

    async def signals_raised_at(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], datetime]:
        """When each (signal kind, scope) was last raised, locking the rows for this transaction."""
        if not keys:
            return {}
        query = (
            select(signal_state)
            .where(
                in_text_array(signal_state.c.kind, (k[0] for k in keys)),
                in_text_array(signal_state.c.scope_key, (k[1] for k in keys)),
            )
            .with_for_update()
        )
        wanted = set(keys)
        rows = await self._session.execute(query)
        return {(r.kind, r.scope_key): r.raised_at for r in rows if (r.kind, r.scope_key) in wanted}

    async def mark_signal(self, kind: str, key: str, at: datetime) -> None:
        """Remember that a signal was raised (its cooldown starts)."""
        statement = insert(signal_state).values(kind=kind, scope_key=key, raised_at=at)
        await self._session.execute(
            statement.on_conflict_do_update(index_elements=["kind", "scope_key"], set_={"raised_at": at})
        )
