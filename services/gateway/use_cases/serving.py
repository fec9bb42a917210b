"""One API call: the key, the model, the limits, the fleet's answer, the settlement."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from services.gateway.adapters.repository import GatewayRepository
from services.gateway.domain import errors
from services.gateway.domain.budgets import Prices, nanos_to_usd, shown_usd
from services.gateway.domain.catalogue import Catalogue
from services.gateway.domain.keys import ApiKey, check_scope
from services.gateway.domain.limits import (
    Claim,
    Limit,
    Refusal,
    Settlement,
    Subject,
    reservation,
    settled_tokens,
    too_large,
    window_of,
)
from services.gateway.domain.metering import Metered
from services.gateway.domain.requests import Ask, prompt_tokens
from services.gateway.domain.responses import Answer, body
from services.gateway.use_cases.access import KeyCache
from services.gateway.use_cases.ledger import Ledger
from shared.events import InferenceCompleted, InferenceRequested
from shared.events.inference import InferenceChunk
from shared.unit_of_work import UnitOfWork


class Fleet(Protocol):
    """Where requests go and results come from (the Kafka bridge, or a fake)."""

    reply_topic: str

    async def send(self, request: InferenceRequested) -> asyncio.Future[InferenceCompleted]:
        """Send a request; the future its result resolves."""

    def forget(self, request_id: str) -> None:
        """Stop waiting for a request's result."""

    def listen(self, request_id: str, on_chunk: Callable[[InferenceChunk], None]) -> None:
        """Hand a streamed request's chunks to `on_chunk` as they come (until its result)."""

    def unlisten(self, request_id: str) -> None:
        """Stop handing a request's chunks on."""


@dataclass(frozen=True)
class Reply:
    """A call's answer, and the seconds spent waiting for the fleet (Kafka, router, Triton)."""

    body: dict[str, Any]
    upstream_s: float


@dataclass(frozen=True)
class Knobs:
    """What the settings decide for every call."""

    timeout_s: float
    lease_grace_s: float
    priority: int
    settle_wait_s: float = 1.0
    source: str = "gateway"
    prices: Prices = field(default_factory=lambda: Prices(0))  # what a token costs against a monthly budget


@dataclass
class Serving:
    """The completion use case over its dependencies."""

    store: UnitOfWork[GatewayRepository]
    keys: KeyCache
    ledger: Ledger
    catalogue: Catalogue
    fleet: Fleet
    knobs: Knobs
    observe: Callable[[str, float], None] = lambda _stage, _seconds: None  # where a call's time went

    async def complete(self, authorization: str | None, ask: Ask) -> Reply:
        """The OpenAI body answering `ask` (and the time the fleet took), or an ApiError."""
        claim, prompt, now = await self.admitted(authorization, ask)
        result, upstream_s = await self._ask_fleet(claim, ask, prompt, now)
        if error := errors.from_result(result.status, result.reason, ask.model):
            raise error
        answer = Answer(result.text, max(result.tokens_in, prompt), result.tokens_out)
        return Reply(body(ask, answer, claim.request_id, int(time.time())), upstream_s)

    async def admitted(self, authorization: str | None, ask: Ask) -> tuple[Claim, int, datetime]:
        """Key, model, scope and limits checked and the call's tokens reserved: its claim, prompt tokens, time."""
        now = datetime.now(UTC)
        key = await self.keys.authenticate(authorization, now)
        if not self.catalogue.knows(ask.model):
            raise errors.model_not_found(ask.model)
        if error := check_scope(key, ask.model):
            raise error
        request_id = uuid.uuid4().hex
        prompt = prompt_tokens(ask.prompt)
        claim = self._claim(key, request_id, ask.model, reservation(prompt, ask.max_tokens), now)
        started = time.perf_counter()
        await self._admit(claim, now, ask.model)
        self.observe("admit", time.perf_counter() - started)
        return claim, prompt, now

    async def answer(self, claim: Claim, ask: Ask, prompt: int, now: datetime) -> tuple[InferenceCompleted, float]:
        """An admitted call's one result from the fleet (and the seconds it took); settled whatever happens."""
        return await self._ask_fleet(claim, ask, prompt, now)

    def _claim(self, key: ApiKey, request_id: str, model: str, tokens: int, now: datetime) -> Claim:
        subjects = (
            Subject(f"key:{key.key_id}", key.limits),
            Subject(f"tenant:{key.tenant.tenant_id}", key.tenant.limits),
        )
        until = now + timedelta(seconds=self.knobs.timeout_s + self.knobs.lease_grace_s)
        cost = self.knobs.prices.cost(model, tokens)  # the worst case: every token max_tokens allows
        return Claim(request_id, subjects, tokens, window_of(now), until, cost)

    async def _admit(self, claim: Claim, now: datetime, model: str) -> None:
        """Raise the counts, or a 429 saying which limit, with Retry-After."""
        refusal = too_large(claim.subjects, claim.tokens, now)
        try:
            if refusal is None and not await self.ledger.admit(claim):
                async with self.store.transaction() as repository:
                    refusal = await repository.explain(claim, now)
        except Exception as error:  # fail closed: no request runs uncounted
            raise errors.unavailable(f"Limits cannot be checked now ({type(error).__name__}); try again") from error
        if refusal is not None:
            if refusal.limit is Limit.BUDGET and refusal.subject.startswith("tenant:"):
                # The budget alert's news: a tenant refused may sit just under 100% of its budget.
                self.ledger.meter(Metered(refusal.subject.split(":", 1)[1], model, 0, 0, 0, 0, 0, budget_refused=1))
            raise _throttled(refusal, claim.tokens)

    async def _ask_fleet(self, claim: Claim, ask: Ask, prompt: int, now: datetime) -> tuple[InferenceCompleted, float]:
        """Send the request, await its one result; settle whatever happens."""
        timeout = self.knobs.timeout_s
        request = InferenceRequested(
            source=self.knobs.source,
            request_id=claim.request_id,
            model_id=ask.model,
            prompt=ask.prompt,
            max_tokens=ask.max_tokens,
            temperature=ask.temperature,
            top_p=ask.top_p,
            priority=self.knobs.priority,
            deadline=now + timedelta(seconds=timeout),
            reply_topic=self.fleet.reply_topic,
            stream=ask.stream,
        )
        try:
            started = time.perf_counter()
            future = await self.fleet.send(request)
            result = await asyncio.wait_for(future, timeout)
            upstream_s = time.perf_counter() - started
            self.observe("fleet", upstream_s)
        except TimeoutError:
            self.fleet.forget(claim.request_id)
            self._settle(claim, ask.model, prompt, None)
            raise errors.timed_out(timeout) from None
        except ConnectionError as error:
            self._settle(claim, ask.model, prompt, None)
            raise errors.unavailable(f"The request could not reach the fleet: {error}") from None
        except BaseException:
            self._settle(claim, ask.model, prompt, None)  # the caller went away: the request may still run
            raise
        settled, started = self._settle(claim, ask.model, prompt, result), time.perf_counter()
        # The answer leaves once its count is exact (a client's next call sees it), but never
        # waits long on a slow database: the settlement is queued and will be written.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(settled), self.knobs.settle_wait_s)
        self.observe("settle", time.perf_counter() - started)
        return result, upstream_s

    def _settle(self, claim: Claim, model: str, prompt: int, result: InferenceCompleted | None) -> asyncio.Future[None]:
        answered = result is not None
        used = settled_tokens(
            claim.tokens, prompt, result.tokens_in if result else 0, result.tokens_out if result else 0, answered
        )
        cost = self.knobs.prices.cost(model, used)
        counted = min(used, max(prompt, result.tokens_in if result else prompt))
        failed = 0 if result is not None and result.status == "ok" else 1
        tenant = claim.subjects[-1].name.split(":", 1)[1]
        self.ledger.meter(Metered(tenant, model, counted, used - counted, cost, 1, failed))  # in the next round
        if used == claim.tokens and not any(s.limits.concurrency is not None for s in claim.subjects):
            nothing: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            nothing.set_result(None)  # the reservation was the usage and no lease was taken: nothing to write
            return nothing
        names = tuple(s.name for s in claim.subjects)
        budgeted = tuple(s.name for s in claim.subjects if s.limits.monthly_budget is not None)
        return self.ledger.settle(
            Settlement(claim.request_id, names, claim.window, claim.tokens, used, claim.cost, cost, budgeted)
        )


def _throttled(refusal: Refusal, tokens: int) -> errors.ApiError:
    """The 429 for a refusal, in OpenAI's words."""
    whose = refusal.subject.split(":", 1)[0]
    if refusal.limit is Limit.BUDGET:
        return errors.budget_exceeded(
            f"This {'API key' if whose == 'key' else 'organization'} has reached its monthly budget of "
            f"{shown_usd(nanos_to_usd(refusal.allowed))} (this request could cost up to its prompt + max_tokens). "
            "It resets at the start of the next month (UTC), or when the budget is raised.",
            refusal.retry_after_s,
        )
    message = (
        f"Rate limit reached for this {'API key' if whose == 'key' else 'organization'} on "
        f"{refusal.limit.value}: limit {refusal.allowed}"
    )
    if refusal.limit.value == "tokens per minute":
        message += f", requested {tokens} (prompt + max_tokens)"
    return errors.rate_limited(message + f". Try again in {refusal.retry_after_s} s.", refusal.retry_after_s)
