"""Kafka handlers of the cost service: typed event in, service call, nothing else."""

from __future__ import annotations

import time

from services.cost import reporting, service
from services.cost.worker import Worker
from shared.deadletter import subscribe
from shared.events import ALLOCATIONS, COST_REPORTS, DEMAND, FORECASTS, SERVER_METRICS, CostReportRequested, Event


def register(worker: Worker) -> None:
    """Subscribe the cost service's handlers on the runtime's broker."""
    runtime = worker.runtime
    group, source = runtime.settings.group_id, runtime.settings.service_name

    # The inbox is keyed by handler, not by group: a renamed group must not apply an event twice.
    def recorder(name: str) -> service.Handler:
        async def on_event(event: Event) -> None:
            await service.record(runtime.sessions, f"cost.{name}", event)

        return on_event

    subscribe(runtime.broker, ALLOCATIONS, group, recorder("on_allocation_changed"), source)
    subscribe(runtime.broker, SERVER_METRICS, group, recorder("on_server_metrics_reported"), source)
    subscribe(runtime.broker, DEMAND, group, recorder("on_demand_window_reported"), source)
    subscribe(runtime.broker, FORECASTS, group, recorder("on_demand_forecasted"), source)

    async def on_cost_report_requested(event: Event) -> None:
        if not isinstance(event, CostReportRequested):
            return  # the topic also carries our own reports
        started = time.perf_counter()
        ctx = worker.context("on_demand", event.request_id)
        result = await reporting.report_on_request(runtime.sessions, "cost.on_cost_report_requested", event, ctx)
        worker.reflect(result, started)

    subscribe(runtime.broker, COST_REPORTS, group, on_cost_report_requested, source)
