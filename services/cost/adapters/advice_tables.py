"""The catalogue, report and recommendation tables, and the cycle's turn lock."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.cost.adapters.orm import cost_report, gpu_price, recommendation, region_price
from services.cost.domain.applying import RecommendationRow
from services.cost.domain.pricing import Catalogue, GpuRate, RegionRate
from services.cost.domain.recommendation import Recommendation
from shared.leader import lock_for_transaction, try_lead

# Replicas of the service take turns: the one holding this lock runs the cycle, the others skip it.
CYCLE_LOCK = "cost.cycle"


class AdviceTables:
    """SQL of what the service tells operators (part of the SQL repository; the caller owns the transaction)."""

    _session: AsyncSession

    async def try_lead_cycle(self) -> bool:
        """Take this transaction's turn at the cycle; False when another replica holds it."""
        return await try_lead(self._session, CYCLE_LOCK)

    async def wait_to_lead_cycle(self, timeout_s: float) -> None:
        """Wait for a running cycle to end and take the turn; a lock timeout raises (transient)."""
        await self._session.execute(text(f"set local lock_timeout = '{int(timeout_s * 1000)}ms'"))
        await lock_for_transaction(self._session, CYCLE_LOCK)

    async def load_catalogue(self) -> Catalogue:
        """The pricing catalogue as the tables hold it now."""
        gpus = (await self._session.execute(select(gpu_price).order_by(gpu_price.c.gpu_type))).all()
        regions = (await self._session.execute(select(region_price).order_by(region_price.c.region))).all()
        return Catalogue(
            gpus=tuple(GpuRate(r.gpu_type, r.on_demand, r.spot, r.reserved) for r in gpus),
            regions=tuple(RegionRate(r.region, r.multiplier, r.egress_per_gb) for r in regions),
        )

    async def save_gpu_rate(self, rate: GpuRate, now: datetime) -> None:
        """Insert or replace one GPU type's base prices."""
        values = {"on_demand": rate.on_demand, "spot": rate.spot, "reserved": rate.reserved, "updated_at": now}
        statement = insert(gpu_price).values(gpu_type=rate.gpu_type, **values)
        await self._session.execute(statement.on_conflict_do_update(index_elements=["gpu_type"], set_=values))

    async def save_region_rate(self, rate: RegionRate, now: datetime) -> None:
        """Insert or replace one region's multiplier and egress price."""
        values = {"multiplier": rate.multiplier, "egress_per_gb": rate.egress_per_gb, "updated_at": now}
        statement = insert(region_price).values(region=rate.region, **values)
        await self._session.execute(statement.on_conflict_do_update(index_elements=["region"], set_=values))

    async def add_report(self, report_id: str, trigger: str, at: datetime, total: float, body: dict[str, Any]) -> None:
        """Keep a report with the fleet snapshot it priced."""
        row = {"report_id": report_id, "trigger": trigger, "created_at": at, "total_per_hour": total, "body": body}
        await self._session.execute(cost_report.insert().values(**row))

    async def latest_report_body(self) -> dict[str, Any] | None:
        """The body of the newest report, or None."""
        query = select(cost_report.c.body).order_by(cost_report.c.created_at.desc()).limit(1)
        body = await self._session.scalar(query)
        return dict(body) if body is not None else None

    async def add_recommendation(self, rec: Recommendation, now: datetime) -> bool:
        """Store a recommendation as open; False when its id is known already."""
        row = {
            "key": rec.key,
            "kind": rec.kind,
            "region": rec.region,
            "gpu_type": rec.gpu_type,
            "model_id": rec.model_id,
            "summary": rec.summary[:2000],
            "savings_per_month": rec.savings_per_month,
            "action": rec.action,
            "evidence": rec.evidence,
            "status": "open",
            "created_at": now,
            "updated_at": now,
        }
        statement = insert(recommendation).values(recommendation_id=rec.recommendation_id, **row)
        inserted = await self._session.execute(
            statement.on_conflict_do_nothing().returning(recommendation.c.recommendation_id)
        )
        return inserted.first() is not None

    async def reopen_recommendation(self, rec: Recommendation, now: datetime) -> bool:
        """Open a superseded or withdrawn recommendation again with fresh evidence; False if it was not."""
        c = recommendation.c
        reopened = await self._session.execute(
            update(recommendation)
            .where((c.recommendation_id == rec.recommendation_id) & c.status.in_(["superseded", "withdrawn"]))
            .values(status="open", updated_at=now, evidence=rec.evidence, savings_per_month=rec.savings_per_month)
            .returning(c.recommendation_id)
        )
        return reopened.first() is not None

    async def refresh_recommendation(self, rec: Recommendation, now: datetime) -> None:
        """Keep a known recommendation's evidence current."""
        await self._session.execute(
            update(recommendation)
            .where(recommendation.c.recommendation_id == rec.recommendation_id)
            .values(evidence=rec.evidence, updated_at=now)
        )

    async def supersede_others(self, rec: Recommendation, now: datetime) -> None:
        """Open recommendations with the same key but another id are replaced by this one."""
        c = recommendation.c
        await self._session.execute(
            update(recommendation)
            .where((c.key == rec.key) & (c.recommendation_id != rec.recommendation_id) & (c.status == "open"))
            .values(status="superseded", updated_at=now)
        )

    async def withdraw_open_except(self, keys: set[str], now: datetime) -> None:
        """Open recommendations whose key is not in `keys` are withdrawn."""
        c = recommendation.c
        await self._session.execute(
            update(recommendation)
            .where((c.status == "open") & c.key.not_in(keys or {""}))
            .values(status="withdrawn", updated_at=now)
        )

    async def open_savings_by_kind(self) -> dict[str, float]:
        """Monthly savings of the open recommendations, per kind."""
        c = recommendation.c
        rows = await self._session.execute(
            select(c.kind, func.sum(c.savings_per_month)).where(c.status == "open").group_by(c.kind)
        )
        return {kind: float(total) for kind, total in rows.all()}

    async def open_recommendations(self) -> list[dict[str, Any]]:
        """Open recommendations as rows, largest savings first."""
        c = recommendation.c
        rows = await self._session.execute(
            select(recommendation).where(c.status == "open").order_by(c.savings_per_month.desc())
        )
        return [dict(row._mapping) for row in rows.all()]

    async def recommendation_for_update(
        self, recommendation_id: str, lock_timeout_s: float
    ) -> RecommendationRow | None:
        """A recommendation locked until commit (waiting at most `lock_timeout_s`), or None."""
        await self._session.execute(text(f"set local lock_timeout = '{int(lock_timeout_s * 1000)}ms'"))
        query = select(recommendation).where(recommendation.c.recommendation_id == recommendation_id)
        r = (await self._session.execute(query.with_for_update())).first()
        if r is None:
            return None
        return RecommendationRow(
            r.recommendation_id, r.kind, r.region, r.gpu_type, r.model_id, r.action, r.evidence, r.status,
            r.applied_request,
        )  # fmt: skip

    async def mark_applied(self, recommendation_id: str, requests: list[dict[str, Any]], now: datetime) -> None:
        """Record that a recommendation was applied, with the requests that went out."""
        await self._session.execute(
            update(recommendation)
            .where(recommendation.c.recommendation_id == recommendation_id)
            .values(status="applied", updated_at=now, applied_request=requests)
        )
