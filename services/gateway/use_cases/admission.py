"""Admission by group commit: claims that arrive while one batch is written go together in the next.

Every admission locks its subjects' rows until its transaction commits. One transaction per
request would hold a hot tenant's row for a database round trip plus the event loop's delay
before the commit, and cap a tenant at a few hundred requests per second; one per batch holds
it once for all. A batch is all or nothing: if it would break a limit, its claims are admitted
one by one in arrival order, so refusals still happen exactly at the limit.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from services.gateway.adapters.repository import GatewayRepository
from services.gateway.domain.limits import Claim
from shared.unit_of_work import UnitOfWork

MAX_BATCH = 256


class _Refused(Exception):
    """Rolls a batch back: a limit refused it."""


@dataclass
class Admitter:
    """Queues claims and writes them in batches, one after another, in a task of its own."""

    store: UnitOfWork[GatewayRepository]
    max_batch: int = MAX_BATCH
    queued: list[tuple[Claim, asyncio.Future[bool]]] = field(default_factory=list)
    _drainer: asyncio.Task[None] | None = None

    async def admit(self, claim: Claim) -> bool:
        """True when `claim` was admitted (its counts raised), False when a limit refused it."""
        decided: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.queued.append((claim, decided))
        if self._drainer is None or self._drainer.done():
            # A task, not the caller: a caller that goes away must not cancel others' admission.
            self._drainer = asyncio.create_task(self._drain())
        return await decided

    async def _drain(self) -> None:
        while self.queued:
            batch, self.queued = self.queued[: self.max_batch], self.queued[self.max_batch :]
            try:
                await self._write(batch)
            except Exception as error:  # the database is down: each caller gets the error
                for _, decided in batch:
                    if not decided.done():
                        decided.set_exception(error)

    async def _write(self, batch: list[tuple[Claim, asyncio.Future[bool]]]) -> None:
        if await self._try([claim for claim, _ in batch]):
            outcomes = [True] * len(batch)
        elif len(batch) == 1:
            outcomes = [False]
        else:
            outcomes = [await self._try([claim]) for claim, _ in batch]  # near a limit: exact, in order
        for (_, decided), admitted in zip(batch, outcomes, strict=True):
            if not decided.done():
                decided.set_result(admitted)

    async def _try(self, claims: list[Claim]) -> bool:
        with contextlib.suppress(_Refused):
            async with self.store.transaction() as repository:
                if not await repository.admit(claims):
                    raise _Refused
                return True
        return False
