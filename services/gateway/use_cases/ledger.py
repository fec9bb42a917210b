"""The usage ledger's one writer per replica: admissions and settlements by group commit.

Every write locks its subjects' rows until its transaction commits. One transaction per request
would hold a hot tenant's rows for a database round trip plus the event loop's delay before the
commit, and admissions and settlements would queue behind each other on the same rows. So what
arrives while one transaction runs goes into the next, settlements and admissions together.
A batch of claims is all or nothing: if it would break a limit, the round is rolled back, its
settlements written alone, and its claims admitted one by one in arrival order, so refusals
still happen exactly at the limit. A failed round is tried once more at once (a deadlock
between replicas' rounds, which lock rows of different minutes, is broken by PostgreSQL).
What finished requests used is metered in the same rounds (one upsert per tenant x model), so
metering costs no transaction of its own and is never lost to a crash once the round commits.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

from services.gateway.adapters.repository import GatewayRepository
from services.gateway.domain.limits import Claim, Settlement
from services.gateway.domain.metering import Metered, usage_event
from shared.events import USAGE, UsageMetered
from shared.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)
MAX_BATCH = 256
RETRY_S = 0.5


class _Refused(Exception):
    """Rolls an admission's transaction back: a limit refused it."""


@dataclass
class Ledger:
    """Queues claims and settlements and writes them in rounds, in a task of its own."""

    store: UnitOfWork[GatewayRepository]
    max_batch: int = MAX_BATCH
    claims: list[tuple[Claim, asyncio.Future[bool]]] = field(default_factory=list)
    settlements: list[tuple[Settlement, asyncio.Future[None]]] = field(default_factory=list)
    metered: list[Metered] = field(default_factory=list)
    _writer: asyncio.Task[None] | None = None

    async def admit(self, claim: Claim) -> bool:
        """True when `claim` was admitted (its counts raised), False when a limit refused it."""
        decided: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.claims.append((claim, decided))
        self._wake()
        return await decided

    def settle(self, settlement: Settlement) -> asyncio.Future[None]:
        """Queue a finished request; the future is done once its settlement is committed."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.settlements.append((settlement, done))
        self._wake()
        return done

    def meter(self, usage: Metered) -> None:
        """Queue what a finished request used; the next round adds it to the meter."""
        self.metered.append(usage)
        self._wake()

    def _wake(self) -> None:
        # A task, not the caller: a caller that goes away must not cancel others' writes.
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain())

    async def _drain(self) -> None:
        failures = 0
        while self.claims or self.settlements or self.metered:
            claims, self.claims = self.claims[: self.max_batch], self.claims[self.max_batch :]
            settlements, self.settlements = self.settlements[: self.max_batch], self.settlements[self.max_batch :]
            metered, self.metered = self.metered, []
            try:
                await self._round(claims, settlements, metered)
                failures = 0
            except Exception as error:
                failures += 1
                log.warning("ledger write failed (%r); %d settlements kept", error, len(settlements))
                self.settlements = settlements + self.settlements
                self.metered = metered + self.metered
                if failures == 1:  # once more at once: a deadlock or a dropped connection passes
                    self.claims = claims + self.claims
                    continue
                for _, decided in claims:  # the database is down: callers get the error, settlements wait
                    if not decided.done():
                        decided.set_exception(error)
                await asyncio.sleep(RETRY_S)

    async def _round(
        self,
        claims: list[tuple[Claim, asyncio.Future[bool]]],
        settlements: list[tuple[Settlement, asyncio.Future[None]]],
        metered: list[Metered] = [],  # noqa: B006 - never mutated
    ) -> None:
        try:
            async with self.store.transaction() as repository:
                if settlements:  # first: the claims of this round see what finished before them
                    await repository.settle([s for s, _ in settlements])
                if claims:  # the usage is metered in the admission statement itself: no round trip of its own
                    if not await repository.admit([c for c, _ in claims], metered, datetime.now(UTC)):
                        raise _Refused  # rolls the round back: no subject keeps a partial count (nor the meter)
                elif metered:
                    await repository.meter(metered, datetime.now(UTC))
            admitted = True
        except _Refused:
            admitted = False
            if settlements or metered:
                async with self.store.transaction() as repository:
                    if settlements:
                        await repository.settle([s for s, _ in settlements])
                    if metered:
                        await repository.meter(metered, datetime.now(UTC))
        for _, done in settlements:
            if not done.done():
                done.set_result(None)
        if admitted or len(claims) == 1:
            outcomes = [admitted] * len(claims)
        else:
            outcomes = [await self._alone(claim) for claim, _ in claims]  # near a limit: exact, in order
        for (_, decided), outcome in zip(claims, outcomes, strict=True):
            if not decided.done():
                decided.set_result(outcome)

    async def _alone(self, claim: Claim) -> bool:
        try:
            async with self.store.transaction() as repository:
                if not await repository.admit([claim]):
                    raise _Refused
        except _Refused:
            return False
        return True

    async def flush(self) -> None:
        """Write what is queued now (at stop); errors are the caller's."""
        while self.claims or self.settlements or self.metered:
            claims, self.claims = self.claims[: self.max_batch], self.claims[self.max_batch :]
            settlements, self.settlements = self.settlements[: self.max_batch], self.settlements[self.max_batch :]
            metered, self.metered = self.metered, []
            await self._round(claims, settlements, metered)


async def reap(store: UnitOfWork[GatewayRepository]) -> int:
    """Release leases a dead replica left behind; how many."""
    async with store.transaction() as repository:
        return await repository.reap(datetime.now(UTC))


async def flush_meter(store: UnitOfWork[GatewayRepository], source: str) -> list[UsageMetered]:
    """Empty the usage meter into one UsageMetered per tenant x model (outbox, same transaction); what was queued."""
    now = datetime.now(UTC)
    async with store.transaction() as repository:
        events = [usage_event(reading, now, source) for reading in await repository.take_meter(now)]
        for event in events:
            await repository.announce(USAGE, event, key=event.tenant_id)
    return events
