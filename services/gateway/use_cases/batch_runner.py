"""Runs batches: claim with a lease, validate, send lines in a bounded window under the key's limits, finalize.

Any replica runs any batch: a round claims the active batches nobody else holds a live lease on
(`FOR UPDATE SKIP LOCKED`), so a batch whose replica died is taken over once its lease runs out.
All of a batch's state is in its rows, so the replica that takes it over goes on where the
other stopped: lines pending are sent, lines sent and not answered by their deadline (plus
`resend_after_s`) are sent again with the same request id, and the first result written wins.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

from services.gateway.adapters.batch_repository import BatchRepository, Due, Sent
from services.gateway.domain.batch_lines import (
    LineState,
    Outcome,
    Parse,
    assemble,
    check_input,
    expired_error,
    refused,
)
from services.gateway.domain.batches import BatchRecord, BatchStatus, line_request_id
from services.gateway.domain.budgets import Prices
from services.gateway.domain.errors import ApiError
from services.gateway.domain.keys import ApiKey, check_key, check_scope
from services.gateway.domain.limits import WINDOW, Claim, Subject, reservation, window_of
from services.gateway.domain.requests import Ask, prompt_tokens
from services.gateway.use_cases.ledger import Ledger
from shared.events import InferenceRequested
from shared.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)
WAITING = (LineState.PENDING, LineState.SENT)


class LineSender(Protocol):
    """Where batch lines go (the Kafka link, or a fake); results come back on `reply_topic`."""

    reply_topic: str

    async def send(self, requests: list[InferenceRequested]) -> None:
        """Produce the requests; raise if the broker did not take them all."""


@dataclass(frozen=True)
class BatchKnobs:
    """What the settings decide for batch runs."""

    owner: str  # this replica (the lease's owner)
    pool: str = "default"  # the batches it runs: those created in its pool
    priority: int = 1
    window: int = 64  # lines in flight per batch
    line_timeout_s: float = 300.0  # a line's deadline at the router
    resend_after_s: float = 30.0  # a line still unanswered this long after its deadline is sent again
    lease_s: float = 30.0
    claim_limit: int = 4  # batches one round works on
    max_attempts: int = 3  # sends of a line that fails (overload refusals do not count)
    retry_s: float = 2.0  # a line refused for now (overloaded) goes again after this
    max_lines: int = 50_000
    prices: Prices = field(default_factory=lambda: Prices(0))  # a line reserves its worst-case cost of a budget


@dataclass
class BatchRunner:
    """One replica's batch runner (a periodic job calls `round`)."""

    store: UnitOfWork[BatchRepository]
    ledger: Ledger
    sender: LineSender
    parse: Parse
    knobs: BatchKnobs
    paced: dict[str, datetime] = field(default_factory=dict)  # batch id -> not before (a limit was full)

    async def round(self) -> None:
        """Claim (or renew) batches and move each one step on."""
        knobs = self.knobs
        async with self.store.transaction() as repository:
            claimed = await repository.claim(knobs.owner, knobs.pool, knobs.lease_s, knobs.claim_limit)
        for record in claimed:
            await self.step(record, datetime.now(UTC))

    async def release(self) -> int:
        """Give this replica's batches up (a graceful stop); the lines' rows say where each one stands."""
        async with self.store.transaction() as repository:
            return await repository.release(self.knobs.owner)

    async def step(self, record: BatchRecord, now: datetime) -> None:
        """What the batch's status asks for now."""
        if record.status is BatchStatus.VALIDATING:
            await self._validate(record, now)
        elif record.status is BatchStatus.IN_PROGRESS:
            await self._run(record, now)
        elif record.status is BatchStatus.CANCELLING:
            await self._cancel(record, now)
        elif record.status is BatchStatus.FINALIZING:
            await self._finalize(record.batch_id, now)

    def _parser(self, key: ApiKey) -> Parse:
        """The endpoint's parsing, plus the key's scopes (a line for a model the key may not use is invalid)."""

        def parse(url: str, body: object) -> Ask:
            ask = self.parse(url, body)
            if error := check_scope(key, ask.model):
                raise error
            return ask

        return parse

    async def _validate(self, record: BatchRecord, now: datetime) -> None:
        async with self.store.transaction() as repository:
            current = await repository.batch(record.batch_id, None, lock=True)
            if current is None or current.status is not BatchStatus.VALIDATING:
                return  # cancelled meanwhile
            key = await repository.key(record.key_id)
            data = await repository.content(record.input_file_id, None)
            if key is None or check_key(key, now) is not None or data is None:
                why = "the batch's API key is no longer valid" if data is not None else "the input file is gone"
                errors = [{"code": "invalid_request", "message": why, "param": None, "line": None}]
                await repository.set_status(record.batch_id, BatchStatus.FAILED, now, errors=errors)
                return
            checked = check_input(data, record.endpoint, self.knobs.max_lines, self._parser(key))
            if checked.errors:
                await repository.set_status(record.batch_id, BatchStatus.FAILED, now, errors=checked.errors)
                return
            await repository.add_lines(record.batch_id, checked.lines)
            await repository.set_status(record.batch_id, BatchStatus.IN_PROGRESS, now)
        log.info("batch %s: %d lines validated", record.batch_id, len(checked.lines))

    async def _run(self, record: BatchRecord, now: datetime) -> None:
        if now >= record.expires_at:
            async with self.store.transaction() as repository:
                await repository.close_lines(record.batch_id, WAITING, LineState.FAILED, expired_error(), now)
                await repository.set_status(record.batch_id, BatchStatus.FINALIZING, now, expired_at=now)
            await self._finalize(record.batch_id, now)
            return
        async with self.store.transaction() as repository:
            key = await repository.key(record.key_id)
            if key is None or (refusal := check_key(key, now)) is not None:
                error = {"code": "invalid_api_key", "message": "the batch's API key is no longer valid"}
                await repository.close_lines(record.batch_id, (LineState.PENDING,), LineState.FAILED, error, now)
                due: list[Due] = []
            elif self.paced.get(record.batch_id, now) > now:
                due = []
            else:
                room = self.knobs.window - await repository.in_flight(record.batch_id, now)
                due = await repository.due(record.batch_id, now, room) if room > 0 else []
        if key is not None and refusal is None and due:
            await self._send(record, key, due, now)
        async with self.store.transaction() as repository:
            if await repository.open_lines(record.batch_id) == 0:
                await repository.set_status(record.batch_id, BatchStatus.FINALIZING, now)
                done = True
            else:
                done = False
        if done:
            await self._finalize(record.batch_id, now)

    async def _send(self, record: BatchRecord, key: ApiKey, due: list[Due], now: datetime) -> None:
        """Admit the due lines under the key's limits (in order), record them sent, then produce them."""
        knobs, parse = self.knobs, self._parser(key)
        given_up = [d for d in due if d.state is LineState.SENT and d.attempts >= knobs.max_attempts]
        if given_up:
            await self._give_up(record.batch_id, given_up, now)
        lines, asks, refusals = [], [], []
        for d in (d for d in due if d not in given_up):
            try:
                asks.append(parse(record.endpoint, d.body))
                lines.append(d)
            except ApiError as error:  # valid at upload; the catalogue or the key's scopes changed since
                refusals.append((d, error))
        if refusals:
            await self._refuse(record.batch_id, refusals, now)
        claims = [self._claim(key, record.batch_id, d, a, now) for d, a in zip(lines, asks, strict=True)]
        admitted = await asyncio.gather(*(self.ledger.admit(c) for c in claims))
        if not all(admitted):  # a limit is full: nothing more of this batch until the next minute
            self.paced[record.batch_id] = window_of(now) + WINDOW
        chosen = [(d, a, c) for d, a, c, ok in zip(lines, asks, claims, admitted, strict=True) if ok]
        if not chosen:
            return
        deadline = now + timedelta(seconds=knobs.line_timeout_s)
        sent = [Sent(d.line_no, c.request_id, c.window, c.tokens) for d, _, c in chosen]
        async with self.store.transaction() as repository:  # first the rows: a crash after this re-sends
            await repository.mark_sent(record.batch_id, sent, deadline + timedelta(seconds=knobs.resend_after_s))
        requests = [self._request(record.batch_id, d, a, deadline) for d, a, _ in chosen]
        try:
            await self.sender.send(requests)
        except Exception as error:  # not (all) produced: back to pending, sent again next round
            log.warning("batch %s: %d lines not produced (%r)", record.batch_id, len(requests), error)
            async with self.store.transaction() as repository:
                for d, _, _ in chosen:
                    await repository.retry(record.batch_id, d.line_no, now)

    def _claim(self, key: ApiKey, batch_id: str, due: Due, ask: Ask, now: datetime) -> Claim:
        """The line's admission: RPM, TPM and budget of the key and its tenant (the window bounds its concurrency)."""
        subjects = (
            Subject(f"key:{key.key_id}", replace(key.limits, concurrency=None)),
            Subject(f"tenant:{key.tenant.tenant_id}", replace(key.tenant.limits, concurrency=None)),
        )
        claim_id = f"{line_request_id(batch_id, due.line_no)}#{due.attempts + 1}"
        until = now + timedelta(seconds=self.knobs.line_timeout_s)
        tokens = reservation(prompt_tokens(ask.prompt), ask.max_tokens)
        return Claim(claim_id, subjects, tokens, window_of(now), until, self.knobs.prices.cost(ask.model, tokens))

    def _request(self, batch_id: str, due: Due, ask: Ask, deadline: datetime) -> InferenceRequested:
        return InferenceRequested(
            source="gateway-batch",
            request_id=line_request_id(batch_id, due.line_no),
            model_id=ask.model,
            prompt=ask.prompt,
            max_tokens=ask.max_tokens,
            temperature=ask.temperature,
            top_p=ask.top_p,
            priority=self.knobs.priority,
            deadline=deadline,
            reply_topic=self.sender.reply_topic,
        )

    async def _refuse(self, batch_id: str, lines: list[tuple[Due, ApiError]], now: datetime) -> None:
        """Lines the gateway itself now refuses: in the error file with the error the endpoint would answer."""
        outcomes = []
        for d, error in lines:
            request_id = line_request_id(batch_id, d.line_no)
            outcomes.append(Outcome(d.line_no, d.custom_id, request_id, LineState.FAILED, refused(request_id, error)))
        async with self.store.transaction() as repository:
            await repository.finish(batch_id, outcomes, now)

    async def _give_up(self, batch_id: str, lines: list[Due], now: datetime) -> None:
        """Lines sent `max_attempts` times with no result: in the error file."""
        error = {"code": "no_result", "message": f"no result after {self.knobs.max_attempts} attempts"}
        outcomes = [
            Outcome(d.line_no, d.custom_id, line_request_id(batch_id, d.line_no), LineState.FAILED, None, error)
            for d in lines
        ]
        async with self.store.transaction() as repository:
            await repository.finish(batch_id, outcomes, now)

    async def _cancel(self, record: BatchRecord, now: datetime) -> None:
        """Stop sending; lines in flight may still answer until their deadline; then `cancelled`."""
        async with self.store.transaction() as repository:
            await repository.close_lines(record.batch_id, (LineState.PENDING,), LineState.CANCELLED, None, now)
            overdue = await repository.due(record.batch_id, now, self.knobs.window)
            outcomes = [
                Outcome(d.line_no, d.custom_id, line_request_id(record.batch_id, d.line_no), LineState.CANCELLED)
                for d in overdue
            ]
            await repository.finish(record.batch_id, outcomes, now)
            open_lines = await repository.open_lines(record.batch_id)
        if open_lines == 0:
            await self._finalize(record.batch_id, now)

    async def _finalize(self, batch_id: str, now: datetime) -> None:
        """Write the output and error files and end the batch (completed, expired or cancelled)."""
        async with self.store.transaction() as repository:
            record = await repository.batch(batch_id, None, lock=True)
            if record is None or record.status not in (BatchStatus.FINALIZING, BatchStatus.CANCELLING):
                return
            if record.status is BatchStatus.CANCELLING:
                status = BatchStatus.CANCELLED
            else:
                status = BatchStatus.EXPIRED if "expired_at" in record.times else BatchStatus.COMPLETED
            assembled = assemble(batch_id, record.counts.total, await repository.outcomes(batch_id))
            await repository.finalize(record, status, assembled, now)
        self.paced.pop(batch_id, None)
        log.info("batch %s %s: %s", batch_id, status, assembled.counts)
