"""Kafka handlers of the allocator: typed event in, use case call, nothing else."""

from __future__ import annotations

from services.allocator.jobs import AllocatorApp
from services.allocator.use_cases import capacity, planning, prices, registrations, spot
from shared.events import (
    ALLOCATIONS,
    PRICES,
    SCALING_ACTIONS,
    AllocationEvent,
    CapacityChangeRequested,
    PricesPublished,
    ScalingActionEvent,
    ScalingActionRequested,
    SpotInterruptionNotice,
)
from shared.subscribe import inbox_consumer


def register(app: AllocatorApp) -> None:
    """Subscribe the allocator's handlers on the runtime's broker."""
    allocator = app.allocator

    async def on_scaling_action_requested(event: ScalingActionEvent) -> None:
        # ScalingActionOverdue shares the topic; it is for the monitor, not for us. Planning commits
        # the action; the provisioning worker carries it out, so the consumer never waits on a start.
        if isinstance(event, ScalingActionRequested) and await planning.plan_action(allocator, inbox_consumer(), event):
            allocator.work_ready.set()
        elif isinstance(event, CapacityChangeRequested):  # an operator applied a cost recommendation
            await capacity.change_capacity(allocator, inbox_consumer(), event)

    async def on_prices_published(event: PricesPublished) -> None:
        await prices.record_prices(allocator, inbox_consumer(), event)

    async def on_allocation_event(event: AllocationEvent) -> None:
        # Spot reclaim notices (the cloud's, or the local market's) for our servers; servers others announce.
        if isinstance(event, SpotInterruptionNotice):
            await spot.on_notice(allocator, inbox_consumer(), event)
        else:
            await registrations.record_registration(allocator, inbox_consumer(), event)

    app.subscribe(SCALING_ACTIONS, on_scaling_action_requested)
    app.subscribe(PRICES, on_prices_published)
    app.subscribe(ALLOCATIONS, on_allocation_event)
