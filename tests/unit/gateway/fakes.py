"""In-memory stand-ins for the gateway's repository and Kafka bridge: the same Protocols, for unit tests."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime

from services.gateway.adapters.repository import GatewayRepository
from services.gateway.domain.budgets import month_of
from services.gateway.domain.keys import ApiKey, Tenant
from services.gateway.domain.limits import Claim, Ledger, Limits, Refusal, Settlement, fallback_refusal
from services.gateway.domain.metering import Metered, MeterReading, summed
from shared.events import Event, InferenceCompleted, InferenceRequested, ResultStatus, Topic
from shared.events.inference import InferenceChunk


@dataclass
class GatewayState:
    """What the gateway's tables hold."""

    ledger: Ledger = field(default_factory=Ledger)
    tenants: dict[str, Tenant] = field(default_factory=dict)
    keys: dict[str, tuple[ApiKey, str]] = field(default_factory=dict)  # key id -> (key, hash)
    leases: dict[str, datetime] = field(default_factory=dict)
    settled: list[Settlement] = field(default_factory=list)
    meter: dict[tuple[str, str], tuple[Metered, datetime]] = field(default_factory=dict)  # (tenant, model) -> since
    outbox: list[tuple[str, Event, str]] = field(default_factory=list)


class FakeRepository(GatewayRepository):
    """The repository over a `GatewayState`."""

    def __init__(self, state: GatewayState, now: datetime) -> None:
        self.state, self.now = state, now

    async def admit(
        self, claims: Sequence[Claim], metered: Sequence[Metered] = (), now: datetime | None = None
    ) -> bool:
        trial = copy.deepcopy(self.state.ledger)  # all or nothing, as the SQL's savepoint
        if any(trial.admit(claim, self.now) is not None for claim in claims):
            return False
        self.state.ledger = trial
        self.state.leases.update({claim.request_id: claim.lease_until for claim in claims})
        await self.meter(metered, now or self.now)
        return True

    async def explain(self, claim: Claim, now: datetime) -> Refusal:
        return self.state.ledger.check(claim, now) or fallback_refusal(claim)

    async def settle(self, settlements: Sequence[Settlement]) -> None:
        for s in settlements:
            self.state.ledger.settle(s)
            self.state.leases.pop(s.request_id, None)
            self.state.settled.append(s)

    async def reap(self, now: datetime) -> int:
        expired = [rid for rid, until in self.state.leases.items() if until < now]
        for rid in expired:
            del self.state.leases[rid]
            for flights in self.state.ledger.inflight.values():
                flights.discard(rid)
        return len(expired)

    async def key_by_hash(self, key_hash: str) -> ApiKey | None:
        return next((k for k, h in self.state.keys.values() if h == key_hash), None)

    async def keys(self, tenant_name: str | None = None) -> list[ApiKey]:
        return [k for k, _ in self.state.keys.values() if tenant_name in (None, k.tenant.name)]

    async def add_key(self, key: ApiKey, key_hash: str) -> None:
        self.state.keys[key.key_id] = (key, key_hash)

    async def revoke(self, key_id_or_prefix: str, now: datetime) -> int:
        hits = [k for k, _ in self.state.keys.values() if key_id_or_prefix in (k.key_id, k.prefix) and not k.revoked_at]
        for k in hits:
            self.state.keys[k.key_id] = (replace(k, revoked_at=now), self.state.keys[k.key_id][1])
        return len(hits)

    async def tenant_by_name(self, name: str) -> Tenant | None:
        return next((t for t in self.state.tenants.values() if t.name == name), None)

    async def tenants(self) -> list[Tenant]:
        return sorted(self.state.tenants.values(), key=lambda t: t.name)

    async def add_tenant(self, tenant: Tenant, now: datetime) -> None:
        self.state.tenants[tenant.tenant_id] = tenant

    async def set_tenant_limits(self, tenant_id: str, limits: Limits) -> None:
        self.state.tenants[tenant_id] = replace(self.state.tenants[tenant_id], limits=limits)

    async def meter(self, usage: Sequence[Metered], now: datetime) -> None:
        for u in summed(usage):
            before, since = self.state.meter.get((u.tenant_id, u.model_id), (None, now))
            self.state.meter[(u.tenant_id, u.model_id)] = (summed([before, u])[0] if before else u, since)

    async def take_meter(self, now: datetime) -> list[MeterReading]:
        readings = []
        for (tenant_id, _), (usage, since) in sorted(self.state.meter.items()):
            tenant = self.state.tenants.get(tenant_id)
            budget = tenant.limits.monthly_budget if tenant else None
            spent = self.state.ledger.months.get((f"tenant:{tenant_id}", month_of(now)), 0)
            name = tenant.name if tenant else tenant_id
            readings.append(MeterReading(usage, name, since, spent if budget is not None else None, budget))
        self.state.meter.clear()
        return readings

    async def announce(self, topic: Topic, event: Event, key: str) -> None:
        self.state.outbox.append((topic.name, event, key))


@dataclass
class FakeStore:
    """A unit of work over one state: a transaction commits a copy, or leaves the state as it was on error."""

    state: GatewayState = field(default_factory=GatewayState)
    now: datetime | None = None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[GatewayRepository]:
        working = copy.deepcopy(self.state)
        yield FakeRepository(working, self.now or datetime.now().astimezone())
        self.state.__dict__.update(working.__dict__)


@dataclass
class FakeFleet:
    """The router as a function of the request: `answer(request)` is its result, or None for silence."""

    reply_topic: str = "inference.replies.gateway-test"
    sent: list[InferenceRequested] = field(default_factory=list)
    forgotten: list[str] = field(default_factory=list)
    status: ResultStatus = ResultStatus.OK
    reason: str | None = None
    silent: bool = False
    listeners: dict[str, Callable[[InferenceChunk], None]] = field(default_factory=dict)

    async def send(self, request: InferenceRequested) -> asyncio.Future[InferenceCompleted]:
        self.sent.append(request)
        future: asyncio.Future[InferenceCompleted] = asyncio.get_running_loop().create_future()
        if not self.silent:
            ok = self.status is ResultStatus.OK
            text = (request.prompt * request.max_tokens)[: request.max_tokens] if ok else ""
            future.set_result(
                InferenceCompleted(
                    source="fake-router",
                    request_id=request.request_id,
                    model_id=request.model_id,
                    status=self.status,
                    reason=self.reason,
                    text=text,
                    tokens_in=len(request.prompt.encode()) if ok else 0,
                    tokens_out=request.max_tokens if ok else 0,
                )
            )
        return future

    def forget(self, request_id: str) -> None:
        self.forgotten.append(request_id)

    def listen(self, request_id: str, on_chunk: Callable[[InferenceChunk], None]) -> None:
        self.listeners[request_id] = on_chunk

    def unlisten(self, request_id: str) -> None:
        self.listeners.pop(request_id, None)


@dataclass
class StreamingFleet(FakeFleet):
    """The router streaming: a chunk per `chunk_size` characters (each in a loop turn of its own), then the result.

    `drop` and `repeat` lose or resend chunks by index (chunks are best effort); `fail_after`
    makes the result `failed` after the chunks went out.
    """

    chunk_size: int = 1
    drop: frozenset[int] = frozenset()
    repeat: frozenset[int] = frozenset()
    fail_after: bool = False

    async def send(self, request: InferenceRequested) -> asyncio.Future[InferenceCompleted]:
        done = await super().send(request)
        if not request.stream or self.silent:
            return done
        result, loop = done.result(), asyncio.get_running_loop()
        later: asyncio.Future[InferenceCompleted] = loop.create_future()
        text = result.text if not self.fail_after else (request.prompt * request.max_tokens)[: request.max_tokens]
        pieces = [text[i : i + self.chunk_size] for i in range(0, len(text), self.chunk_size)]
        for index, piece in enumerate(pieces):
            for _ in range((index not in self.drop) + (index in self.repeat)):
                chunk = InferenceChunk(
                    source="fake-router",
                    request_id=request.request_id,
                    model_id=request.model_id,
                    index=index,
                    text=piece,
                )
                loop.call_soon(self._emit, chunk)
        if self.fail_after:
            result = result.model_copy(update={"status": ResultStatus.FAILED, "reason": "boom", "text": ""})
        loop.call_soon(later.set_result, result)
        return later

    def _emit(self, chunk: InferenceChunk) -> None:
        if (listener := self.listeners.get(chunk.request_id)) is not None:
            listener(chunk)
