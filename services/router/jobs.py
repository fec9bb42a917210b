"""The router's periodic jobs: the demand window report, and the server health check with the gauges.

The hot path's loop runs them beside its own loops (consume, timer, commit) instead of the shared
runtime's job set: its graceful stop drains the requests first, and the last demand window has to
go out after that drain and before the final commit (`last_round`), so that no result goes
uncounted and none is counted twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from services.router.adapters.metrics import RouterMetrics
from services.router.domain.demand import DemandWindow, percentile
from services.router.domain.registry import Registry
from services.router.hotpath.accounting import Accounting
from services.router.hotpath.dispatch import Dispatcher
from services.router.hotpath.pipeline import RouterCore
from services.router.hotpath.results import ResultPublisher
from services.router.settings import RouterSettings
from shared.events import DEMAND, DemandWindowReported
from shared.jobs import Job, periodic


class RouterJobs:
    """Reports demand every `demand_window_s`; checks servers and refreshes the gauges every `health_interval_s`."""

    def __init__(
        self,
        settings: RouterSettings,
        core: RouterCore,
        dispatcher: Dispatcher,
        results: ResultPublisher,
        accounting: Accounting,
        demand: DemandWindow,
        metrics: RouterMetrics,
    ) -> None:
        self._settings = settings
        self._core = core
        self._dispatcher = dispatcher
        self._registry: Registry = dispatcher.registry
        self._results = results
        self._accounting = accounting
        self._demand = demand
        self._metrics = metrics
        self._window_start = datetime.now(UTC)

    def jobs(self) -> Sequence[Job]:
        """The demand report and the health check, as supervised periodic jobs."""
        s = self._settings
        return (
            periodic("router.demand", s.demand_window_s, self.report_demand),
            periodic("router.health", s.health_interval_s, self.check_health),
        )

    async def last_round(self) -> None:
        """After the drain: the last demand window, holding every result this process sent."""
        await self.report_demand()

    async def report_demand(self) -> None:
        """Publish the window's demand per model and region, and refresh the gauges."""
        end = datetime.now(UTC)
        start, self._window_start = self._window_start, end
        for (model_id, region), c in self._demand.take().items():
            event = DemandWindowReported(
                source="router",
                model_id=model_id,
                region=region,
                window_start=start,
                window_end=max(end, start + timedelta(microseconds=1)),
                requests=c.requests,
                ok=c.ok,
                rejected=c.rejected,
                failed=c.failed,
                tokens_in=c.tokens_in,
                tokens_out=c.tokens_out,
                latency_p50_ms=percentile(c.latencies_ms, 0.5),
                latency_p95_ms=percentile(c.latencies_ms, 0.95),
                latency_p99_ms=percentile(c.latencies_ms, 0.99),
                batches=c.batches,
            )
            await self._results.event(DEMAND.name, event, model_id)
        self.refresh_gauges()

    def refresh_gauges(self) -> None:
        """Queue depth per model (bounded labels), held requests, servers by state."""
        models = self._core.models() | {m for placements in self._registry.placements.values() for m in placements}
        depth: dict[str, int] = {}
        for model_id in models:
            label = self._accounting.label(model_id)
            depth[label] = depth.get(label, 0) + self._core.queued(model_id)
        for label, count in depth.items():
            self._metrics.queue_depth.labels(label).set(count)
        self._metrics.held.set(self._core.held_requests)
        for state, count in self._registry.count_by_state().items():
            self._metrics.servers.labels(state).set(count)

    async def check_health(self) -> None:
        """Readiness of every server; release requests waiting for a server that is back."""
        await self._dispatcher.check_health()
        self._core.release_servable()
        self.refresh_gauges()
