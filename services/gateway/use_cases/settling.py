"""Finished requests settle by group commit: whatever finished while the last write ran goes in the next one."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

from services.gateway.adapters.repository import GatewayRepository
from services.gateway.domain.limits import Settlement
from shared.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)
RETRY_S = 0.5


@dataclass
class Settler:
    """Queues settlements and writes them in one transaction per round; each caller may await its own."""

    store: UnitOfWork[GatewayRepository]
    queued: list[tuple[Settlement, asyncio.Future[None]]] = field(default_factory=list)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, settlement: Settlement) -> asyncio.Future[None]:
        """Queue one finished request; the future is done once its settlement is committed."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.queued.append((settlement, done))
        self._wake.set()
        return done

    async def flush(self) -> int:
        """Settle everything queued in one transaction; how many (kept for the next round if it fails)."""
        if not self.queued:
            return 0
        batch, self.queued = self.queued, []
        try:
            async with self.store.transaction() as repository:
                await repository.settle([s for s, _ in batch])
        except BaseException:
            self.queued = batch + self.queued
            raise
        for _, done in batch:
            if not done.done():
                done.set_result(None)
        return len(batch)

    async def run(self) -> None:
        """Flush whenever something is queued, for ever; a failed write is tried again (the leases heal a crash)."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush()
            except Exception as error:
                log.warning("settling %d requests failed (%r); trying again", len(self.queued), error)
                await asyncio.sleep(RETRY_S)
                self._wake.set()


async def reap(store: UnitOfWork[GatewayRepository]) -> int:
    """Release leases a dead replica left behind; how many."""
    async with store.transaction() as repository:
        return await repository.reap(datetime.now(UTC))
