"""The allocator assembled over the shared runtime, and its jobs: the outbox relay, the provisioning
worker, the reconciler and retention."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Coroutine, Sequence
from datetime import timedelta
from typing import Any

from services.allocator.adapters.capacity_provider import CapacityProvider, EmulatedCapacityProvider
from services.allocator.adapters.config import load_fleet
from services.allocator.adapters.metrics import AllocatorMetrics
from services.allocator.adapters.orm import inbox, outbox, scaling_action, server
from services.allocator.adapters.provisioner import Provisioner
from services.allocator.domain.autoscaling import AutoscalingRules, PoolQuota
from services.allocator.settings import AllocatorSettings
from services.allocator.use_cases import provisioning, replanning, spot
from services.allocator.use_cases.allocator import Allocator
from services.allocator.use_cases.cluster import ClusterAutoscaler
from services.allocator.use_cases.reconciling import Reconciler
from shared.jobs import Job, periodic
from shared.retention import Kept, messaging
from shared.runtime import Runtime, ServiceApp


def retained(settings: AllocatorSettings) -> tuple[Kept, ...]:
    """What retention prunes: inbox, sent outbox, and finished history (actions done or failed, servers gone).

    Live inventory never goes: actions in progress and live servers are kept however old.
    """
    history = settings.history_retention_s
    return (
        *messaging(inbox, outbox, settings),
        Kept(scaling_action, "updated_at", history, only=scaling_action.c.state.in_(("done", "failed"))),
        Kept(server, "updated_at", history, only=server.c.state.in_(("released", "failed"))),
    )


class AllocatorApp(ServiceApp[AllocatorSettings, AllocatorMetrics]):
    """The allocator: its runtime, settings, metrics and relay, and `allocator`, what its use cases work with."""

    def __init__(
        self,
        runtime: Runtime,
        settings: AllocatorSettings,
        provisioner: Provisioner,
        capacity: CapacityProvider | None = None,
    ) -> None:
        metrics = AllocatorMetrics(runtime.registry)
        super().__init__(runtime, settings, metrics, outbox, relay_poll_s=settings.relay_poll_interval_s)
        self.allocator = Allocator(
            settings=settings,
            sessions=runtime.sessions,
            fleet=load_fleet(settings.fleet_config),
            provisioner=provisioner,
            relay=self.relay,
            metrics=metrics,
            new_suffix=lambda: uuid.uuid4().hex[:8],
            tracer=runtime.tracer_provider.get_tracer("llmfleet.allocator"),
        )
        self.reconciler = Reconciler(self.allocator)
        self.cluster = ClusterAutoscaler(
            self.allocator,
            capacity or EmulatedCapacityProvider(settings.cluster_provision_delay_s),
            AutoscalingRules(down_after=timedelta(seconds=settings.cluster_scale_down_after_s)),
            PoolQuota(settings.cluster_min_gpus, settings.cluster_max_gpus),
        )
        # Names this replica on the actions it holds (a lease), so an operator can tell who works on what.
        self.worker_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"

    def rounds(self) -> Sequence[Job]:
        """The provisioning worker (off the consumer loop) and the reconciler (at start, then every interval)."""
        allocator = self.allocator

        def work(stopping: asyncio.Event) -> Coroutine[Any, Any, None]:
            return provisioning.work(allocator, self.worker_id, stopping)

        reconcile = periodic(
            "allocator reconciler", self.settings.reconcile_interval_s, self.reconciler.round, immediately=True
        )
        # The worker is cancelled on stop, not graceful: a start may take minutes, and the next owner carries it on.
        jobs = [Job("allocator provisioning", work), reconcile]
        if self.settings.replan_interval_s > 0:  # the fleet MILP over what runs, moving instances that save enough
            jobs.append(
                periodic("allocator re-plan", self.settings.replan_interval_s, lambda: replanning.replan(allocator))
            )
        if self.settings.cluster_interval_s > 0:  # pools follow the seed's autoscaling rules, within the quota
            jobs.append(periodic("allocator cluster autoscaler", self.settings.cluster_interval_s, self.cluster.round))
        if self.settings.spot_reclaims_per_hour > 0:  # the local spot market (a cloud gives notices itself)
            rate, every = self.settings.spot_reclaims_per_hour, self.settings.spot_market_interval_s
            jobs.append(periodic("allocator spot market", every, lambda: spot.market_round(allocator, rate, every)))
        return jobs

    def retained(self) -> Sequence[Kept]:
        """The inbox and sent outbox rows."""
        return retained(self.settings)

    async def prepare(self) -> None:
        """Export the inventory gauges before the first event arrives."""
        await self.metrics.refresh(self.runtime.sessions)
