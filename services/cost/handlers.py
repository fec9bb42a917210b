"""Kafka handlers of the cost service: typed event in, service call, nothing else."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from services.cost.jobs import CostApp
from services.cost.use_cases import recording, reporting
from shared.events import (
    ALLOCATIONS,
    COST_REPORTS,
    DEMAND,
    FORECASTS,
    SERVER_METRICS,
    USAGE,
    CostReportEvent,
    CostReportRequested,
    Event,
    UsageMetered,
)
from shared.subscribe import inbox_consumer


def register(app: CostApp) -> None:
    """Subscribe the cost service's handlers on the runtime's broker."""
    sessions = app.runtime.sessions

    # The inbox is keyed by handler, not by group: a renamed group must not apply an event twice.
    async def on_fleet_event(event: Event) -> None:
        await recording.record(sessions, inbox_consumer(), event)

    # One recorder for four topics: each keeps the inbox name its rows already carry.
    app.subscribe(ALLOCATIONS, on_fleet_event, inbox="cost.on_allocation_changed")
    app.subscribe(SERVER_METRICS, on_fleet_event, inbox="cost.on_server_metrics_reported")
    app.subscribe(DEMAND, on_fleet_event, inbox="cost.on_demand_window_reported")
    app.subscribe(FORECASTS, on_fleet_event, inbox="cost.on_demand_forecasted")

    async def on_cost_report_requested(event: CostReportEvent) -> None:
        if not isinstance(event, CostReportRequested):
            return  # the topic also carries our own reports
        started = time.perf_counter()
        ctx = app.context("on_demand", event.request_id)
        result = await reporting.report_on_request(sessions, inbox_consumer(), event, ctx)
        app.reflect(result, started)

    app.subscribe(COST_REPORTS, on_cost_report_requested)

    async def on_usage_metered(event: UsageMetered) -> None:
        await recording.record_usage(sessions, inbox_consumer(), event, datetime.now(UTC))

    app.subscribe(USAGE, on_usage_metered)
