"""Kafka handlers of the cost service: typed event in, service call, nothing else."""

from __future__ import annotations

import time

from services.cost.jobs import Worker
from services.cost.use_cases import recording, reporting
from shared.events import (
    ALLOCATIONS,
    COST_REPORTS,
    DEMAND,
    FORECASTS,
    SERVER_METRICS,
    CostReportEvent,
    CostReportRequested,
    Event,
)
from shared.subscribe import inbox_consumer, subscribe


def register(worker: Worker) -> None:
    """Subscribe the cost service's handlers on the runtime's broker."""
    runtime = worker.runtime
    group, source = runtime.settings.group_id, runtime.settings.service_name

    # The inbox is keyed by handler, not by group: a renamed group must not apply an event twice.
    async def on_fleet_event(event: Event) -> None:
        await recording.record(runtime.sessions, inbox_consumer(), event)

    # One recorder for four topics: each keeps the inbox name its rows already carry.
    subscribe(runtime.broker, ALLOCATIONS, group, on_fleet_event, source, inbox="cost.on_allocation_changed")
    subscribe(runtime.broker, SERVER_METRICS, group, on_fleet_event, source, inbox="cost.on_server_metrics_reported")
    subscribe(runtime.broker, DEMAND, group, on_fleet_event, source, inbox="cost.on_demand_window_reported")
    subscribe(runtime.broker, FORECASTS, group, on_fleet_event, source, inbox="cost.on_demand_forecasted")

    async def on_cost_report_requested(event: CostReportEvent) -> None:
        if not isinstance(event, CostReportRequested):
            return  # the topic also carries our own reports
        started = time.perf_counter()
        ctx = worker.context("on_demand", event.request_id)
        result = await reporting.report_on_request(runtime.sessions, inbox_consumer(), event, ctx)
        worker.reflect(result, started)

    subscribe(runtime.broker, COST_REPORTS, group, on_cost_report_requested, source)
