"""Kafka handlers of the allocator: typed event in, use case call, nothing else."""

from __future__ import annotations

from faststream.kafka import KafkaBroker

from services.allocator.use_cases import planning, prices, provisioning
from services.allocator.use_cases.allocator import Allocator
from shared.events import PRICES, SCALING_ACTIONS, PricesPublished, ScalingActionEvent, ScalingActionRequested
from shared.subscribe import inbox_consumer, subscribe


def register(broker: KafkaBroker, allocator: Allocator, group: str) -> None:
    """Subscribe the allocator's handlers on the broker."""
    source = allocator.settings.service_name

    async def on_scaling_action_requested(event: ScalingActionEvent) -> None:
        # ScalingActionOverdue shares the topic; it is for the monitor, not for us.
        if isinstance(event, ScalingActionRequested) and await planning.plan_action(allocator, inbox_consumer(), event):
            await provisioning.carry_out(allocator, event.action_id)

    async def on_prices_published(event: PricesPublished) -> None:
        await prices.record_prices(allocator, inbox_consumer(), event)

    subscribe(broker, SCALING_ACTIONS, group, on_scaling_action_requested, source=source)
    subscribe(broker, PRICES, group, on_prices_published, source=source)
