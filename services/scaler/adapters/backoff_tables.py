"""The allocator's refusals per model and region (the backoff and capacity alert state)."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.scaler.adapters.orm import allocation_backoff
from services.scaler.domain.backoff import Refusals

Key = tuple[str, str]  # (model id, region)
_COLUMNS = (
    allocation_backoff.c.refusals,
    allocation_backoff.c.last_refused_at,
    allocation_backoff.c.last_reason,
    allocation_backoff.c.alert_fired_at,
)


class BackoffTables:
    """SQL of the refusal counts (part of the SQL repository; the caller owns the transaction)."""

    _session: AsyncSession

    async def refusals(self) -> dict[Key, Refusals]:
        """Every model and region refused since its last success (a small table: one row per pair)."""
        query = select(allocation_backoff.c.model_id, allocation_backoff.c.region, *_COLUMNS)
        return {(m, r): Refusals(*rest) for m, r, *rest in await self._session.execute(query)}

    async def refusals_of(self, model_id: str, region: str) -> Refusals | None:
        """The model's refusals in the region, locked until the commit (two refusals must both count)."""
        query = (
            select(*_COLUMNS)
            .where(allocation_backoff.c.model_id == model_id, allocation_backoff.c.region == region)
            .with_for_update()
        )
        row = (await self._session.execute(query)).first()
        return None if row is None else Refusals(*row)

    async def save_refusals(self, model_id: str, region: str, refusals: Refusals) -> None:
        """Insert or replace the model's refusals in the region."""
        values = {
            "refusals": refusals.count,
            "last_refused_at": refusals.last_at,
            "last_reason": refusals.last_reason,
            "alert_fired_at": refusals.alert_fired_at,
        }
        statement = insert(allocation_backoff).values(model_id=model_id, region=region, **values)
        await self._session.execute(statement.on_conflict_do_update(index_elements=["model_id", "region"], set_=values))

    async def forget_refusals(self, model_id: str, region: str) -> None:
        """A success: the model's refusals in the region no longer count."""
        await self._session.execute(
            delete(allocation_backoff).where(
                allocation_backoff.c.model_id == model_id, allocation_backoff.c.region == region
            )
        )
