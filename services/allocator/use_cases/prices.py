"""Recording the cost service's GPU prices, once per event."""

from __future__ import annotations

from services.allocator.use_cases.allocator import Allocator
from shared.events import PricesPublished


async def record_prices(allocator: Allocator, consumer: str, event: PricesPublished) -> bool:
    """Store the cost service's prices (used for the $/h of servers started from now on)."""
    async with allocator.units.transaction() as repo:
        if not await repo.first_delivery(consumer, event.event_id):
            return False
        for price in event.prices:
            await repo.record_price(price)
    return True
