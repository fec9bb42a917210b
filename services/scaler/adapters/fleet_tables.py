"""Where models run and how busy they are: placements, utilisation reports and monitor signals."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, case, delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.scaler.adapters.orm import capacity_estimate, model_placement, scaling_signal, server_utilization
from services.scaler.domain.measured import Measured
from services.scaler.domain.signals import combine
from shared.events import ModelLoaded, ScalingSignalRaised, ServerMetricsReported, SignalKind

Key = tuple[str, str]  # (model id, region)


class FleetTables:
    """SQL of placements, utilisation and signals (part of the SQL repository; the caller owns the transaction)."""

    _session: AsyncSession

    async def place(self, event: ModelLoaded) -> None:
        """A model is loaded on a server."""
        statement = insert(model_placement).values(
            server_id=event.server_id, model_id=event.model_id, region=event.region, loaded_at=event.occurred_at
        )
        await self._session.execute(statement.on_conflict_do_nothing())

    async def unplace(self, server_id: str, model_id: str | None = None) -> None:
        """A model (or, with no model, everything) is no longer on a server."""
        condition = model_placement.c.server_id == server_id
        if model_id is not None:
            condition = and_(condition, model_placement.c.model_id == model_id)
        await self._session.execute(delete(model_placement).where(condition))

    async def instances(self, model_id: str, region: str) -> int:
        """How many servers in the region have the model loaded."""
        query = select(func.count()).where(model_placement.c.model_id == model_id, model_placement.c.region == region)
        return int((await self._session.execute(query)).scalar_one())

    async def placements(self) -> dict[Key, tuple[int, datetime]]:
        """Instances and the latest load time per model and region."""
        query = select(
            model_placement.c.model_id, model_placement.c.region, func.count(), func.max(model_placement.c.loaded_at)
        ).group_by(model_placement.c.model_id, model_placement.c.region)
        return {(m, r): (int(n), at) for m, r, n, at in await self._session.execute(query)}

    async def save_utilization(self, event: ServerMetricsReported) -> None:
        """Keep the newest utilisation report per server and model."""
        values = {
            "server_id": event.server_id,
            "model_id": event.model_id or "",
            "region": event.region,
            "utilization": event.utilization,
            "queue_depth": event.queue_depth,
            "reported_at": event.occurred_at,
        }
        statement = insert(server_utilization).values(**values)
        await self._session.execute(
            statement.on_conflict_do_update(
                index_elements=["server_id", "model_id"],
                set_={k: statement.excluded[k] for k in ("region", "utilization", "queue_depth", "reported_at")},
                where=server_utilization.c.reported_at < statement.excluded.reported_at,
            )
        )

    async def utilizations(self, since: datetime) -> dict[Key, float]:
        """Mean recent utilisation per model and region (server-wide reports count for the models on them)."""
        placed = model_placement.alias("placed")
        model = func.coalesce(func.nullif(server_utilization.c.model_id, ""), placed.c.model_id).label("model")
        query = (
            select(model, server_utilization.c.region, func.avg(server_utilization.c.utilization))
            .select_from(
                server_utilization.outerjoin(
                    placed,
                    and_(server_utilization.c.model_id == "", placed.c.server_id == server_utilization.c.server_id),
                )
            )
            .where(server_utilization.c.reported_at >= since)
            .group_by(model, server_utilization.c.region)
        )
        return {(m, r): float(u) for m, r, u in await self._session.execute(query) if m}

    async def save_signal(self, event: ScalingSignalRaised) -> None:
        """Store a monitor signal (it counts as pressure while it is recent)."""
        await self._session.execute(
            scaling_signal.insert().values(
                event_id=event.event_id,
                model_id=event.model_id,
                region=event.region,
                server_id=event.server_id,
                kind=event.kind.value,
                metric=event.metric,
                value=event.value,
                threshold=event.threshold,
                raised_at=event.occurred_at,
                factor=event.factor,
                gpu_type=event.gpu_type,
            )
        )

    async def pressures(self, since: datetime) -> dict[Key, int]:
        """+1 where recent monitor signals ask for more capacity, -1 where only for less.

        A signal about a server counts for the models on it; one without a region (region "")
        counts for every region of its model.
        """
        placed = model_placement.alias("placed")
        model = func.coalesce(scaling_signal.c.model_id, placed.c.model_id).label("model")
        region = func.coalesce(scaling_signal.c.region, placed.c.region, "").label("region")
        up = case((scaling_signal.c.kind == SignalKind.SCALE_DOWN.value, 0), else_=1)
        query = (
            select(model, region, func.max(up))
            .select_from(
                scaling_signal.outerjoin(
                    placed, and_(scaling_signal.c.model_id.is_(None), placed.c.server_id == scaling_signal.c.server_id)
                )
            )
            .where(scaling_signal.c.raised_at >= since)
            .group_by(model, region)
        )
        return {(m, r): (1 if wants_more else -1) for m, r, wants_more in await self._session.execute(query) if m}

    async def signal_sizes(self, since: datetime) -> dict[Key, float]:
        """The size of the recent signals per model and region (domain/signals.py's `combine`), where known.

        Scoped like `pressures` (a server's signal counts for the models on it); signals of every GPU
        type of a model in a region are combined.
        """
        placed = model_placement.alias("placed")
        model = func.coalesce(scaling_signal.c.model_id, placed.c.model_id).label("model")
        region = func.coalesce(scaling_signal.c.region, placed.c.region, "").label("region")
        query = (
            select(model, region, scaling_signal.c.kind, scaling_signal.c.factor)
            .select_from(
                scaling_signal.outerjoin(
                    placed, and_(scaling_signal.c.model_id.is_(None), placed.c.server_id == scaling_signal.c.server_id)
                )
            )
            .where(scaling_signal.c.raised_at >= since)
        )
        found: dict[Key, list[tuple[bool, float | None]]] = {}
        for m, r, kind, factor in await self._session.execute(query):
            if m:
                found.setdefault((m, r), []).append((kind != SignalKind.SCALE_DOWN.value, factor))
        sizes = {key: combine(signals) for key, signals in found.items()}
        return {key: p.change for key, p in sizes.items() if p is not None and p.change is not None}

    async def measured_capacity(self, model_id: str, gpu_type: str) -> Measured | None:
        """The model's measured capacity on the GPU type, locked until the commit (reports update it in turn)."""
        query = (
            select(capacity_estimate.c.requests_per_hour, capacity_estimate.c.samples, capacity_estimate.c.updated_at)
            .where(capacity_estimate.c.model_id == model_id, capacity_estimate.c.gpu_type == gpu_type)
            .with_for_update()
        )
        row = (await self._session.execute(query)).first()
        return None if row is None else Measured(float(row[0]), int(row[1]), row[2])

    async def save_measured_capacity(self, model_id: str, gpu_type: str, measured: Measured) -> None:
        """Insert or replace the model's measured capacity on the GPU type."""
        values = {
            "requests_per_hour": measured.requests_per_hour,
            "samples": measured.samples,
            "updated_at": measured.updated_at,
        }
        statement = insert(capacity_estimate).values(model_id=model_id, gpu_type=gpu_type, **values)
        await self._session.execute(
            statement.on_conflict_do_update(index_elements=["model_id", "gpu_type"], set_=values)
        )

    async def measured_capacities(self) -> dict[Key, Measured]:
        """Every measured capacity, keyed by (model id, GPU type) (a small table: one row per pair)."""
        query = select(
            capacity_estimate.c.model_id,
            capacity_estimate.c.gpu_type,
            capacity_estimate.c.requests_per_hour,
            capacity_estimate.c.samples,
            capacity_estimate.c.updated_at,
        )
        return {(m, g): Measured(float(rph), int(n), at) for m, g, rph, n, at in await self._session.execute(query)}
