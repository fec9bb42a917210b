"""The allocator's Prometheus metrics, refreshed from its tables after each change."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.allocator.adapters.inventory import LIVE
from services.allocator.adapters.orm import gpu_pool, server


class AllocatorMetrics:
    """llmfleet_allocator_*: GPUs and servers by state, allocation results, provisioning time."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.gpus = Gauge(
            "llmfleet_allocator_gpus", "GPUs per pool and state", ["region", "gpu_type", "state"], registry=registry
        )
        self.servers = Gauge(
            "llmfleet_allocator_servers",
            "Servers per region, GPU type and state",
            ["region", "gpu_type", "state"],
            registry=registry,
        )
        self.cost = Gauge("llmfleet_allocator_cost_per_hour", "$/h of the running servers", registry=registry)
        self.allocations = Counter(
            "llmfleet_allocator_allocations", "Scaling actions by result", ["result"], registry=registry
        )
        self.provision_seconds = Histogram(
            "llmfleet_allocator_provision_seconds",
            "Time to make a step real (start+load, load, unload, stop)",
            ["step"],
            buckets=(0.1, 0.5, 1, 2, 5, 10, 20, 40, 80, 160),
            registry=registry,
        )
        self.repairs = Counter(
            "llmfleet_allocator_repairs", "Differences the reconciler mended, by kind", ["repair"], registry=registry
        )
        self.conservation_violations = Gauge(
            "llmfleet_allocator_gpu_conservation_violations",
            "Pools whose GPU books do not balance (free + reserved + allocated != total), at the last check",
            registry=registry,
        )
        self.spot_notices = Counter(
            "llmfleet_allocator_spot_notices", "Spot reclaim notices for this deployment's servers", registry=registry
        )
        self.moves = Counter(
            "llmfleet_allocator_moves", "Servers the re-plan moved to a cheaper placement", registry=registry
        )
        self.capacity_changes = Counter(
            "llmfleet_allocator_cluster_gpus",
            "GPUs the cluster autoscaler added to or released from pools",
            ["change"],
            registry=registry,
        )
        self.reconcile_seconds = Histogram(
            "llmfleet_allocator_reconcile_seconds",
            "Time of one reconciliation round",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
            registry=registry,
        )

    async def refresh(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        """Set the gauges from the pools and servers as committed."""
        async with sessions() as session:
            pools = (await session.execute(select(gpu_pool))).all()
            servers = (
                await session.execute(
                    select(
                        server.c.region,
                        server.c.gpu_type,
                        server.c.state,
                        func.count(),
                        func.sum(server.c.cost_per_hour),
                    )
                    .where(server.c.state.in_(LIVE))
                    .group_by(server.c.region, server.c.gpu_type, server.c.state)
                )
            ).all()
        for p in pools:
            allocated = p.total - p.available - p.reserved
            for state, value in (("available", p.available), ("reserved", p.reserved), ("allocated", allocated)):
                self.gpus.labels(p.region, p.gpu_type, state).set(value)
        self.servers.clear()
        for region, gpu_type, state, count, _ in servers:
            self.servers.labels(region, gpu_type, state).set(count)
        self.cost.set(sum(float(row[4] or 0.0) for row in servers if row[2] == "running"))
