"""Records batch lines' results (any replica, whoever runs the batch): one result per line, settled in the ledger.

A result is written only while its line waits for one (pending or sent), so a repeated result
(the router answered a line twice because the gateway sent it twice, or Kafka delivered a record
again) changes nothing: each custom_id gets exactly one output line. A refusal that waiting can
fix (the model is overloaded, or a batch line was shed) sends the line back to pending; a failure
on every server is tried `max_attempts` times; any other refusal is the line's answer.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from services.gateway.adapters.batch_repository import BatchRepository, Waiting
from services.gateway.domain import errors
from services.gateway.domain.batch_lines import LineState, Outcome, Parse, answered, refused
from services.gateway.domain.batches import parse_request_id
from services.gateway.domain.budgets import Prices
from services.gateway.domain.errors import ApiError
from services.gateway.domain.keys import ApiKey
from services.gateway.domain.limits import Limits, Settlement, settled_tokens
from services.gateway.domain.metering import Metered
from services.gateway.domain.requests import prompt_tokens
from services.gateway.domain.responses import Answer, body
from services.gateway.use_cases.ledger import Ledger
from shared.events import InferenceCompleted
from shared.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)
OVERLOADED = "model_overloaded"


@dataclass
class BatchResults:
    """Writes each result to its line and settles the line's claim."""

    store: UnitOfWork[BatchRepository]
    ledger: Ledger
    parse: Parse
    max_attempts: int = 3
    retry_s: float = 2.0
    prices: Prices = field(default_factory=lambda: Prices(0))
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    async def record(self, results: list[InferenceCompleted]) -> int:
        """Write a poll's results in one transaction (a statement or two per batch); how many lines they answered."""
        now = self.clock()
        by_batch: defaultdict[str, dict[int, InferenceCompleted]] = defaultdict(dict)
        for result in results:
            ids = parse_request_id(result.request_id)
            if ids is not None:  # the topic is the batches' own; anything else is skipped
                by_batch[ids[0]].setdefault(ids[1], result)  # within a poll too, the first result wins
        settlements: list[tuple[Waiting, InferenceCompleted]] = []
        keys: dict[str, ApiKey | None] = {}
        written = 0
        async with self.store.transaction() as repository:
            for batch_id, answers in by_batch.items():
                lines = await repository.waiting(batch_id, list(answers))
                waiting = [ln for ln in lines if ln.state in (LineState.PENDING, LineState.SENT)]
                outcomes, retried = [], []
                for line in waiting:  # the others are repeats, or lines of a cancelled or finished batch
                    outcome = self._outcome(line, answers[line.line_no])
                    if outcome is None:
                        due = now + timedelta(seconds=self.retry_s)
                        if await repository.retry(batch_id, line.line_no, due):
                            retried.append(line)
                    else:
                        outcomes.append(outcome)
                finished = await repository.finish(batch_id, outcomes, now)
                written += len(finished)
                changed = retried + [ln for ln in waiting if ln.line_no in finished]
                for line in changed:
                    if line.claim_id is not None:
                        settlements.append((line, answers[line.line_no]))
                        if line.key_id not in keys:
                            keys[line.key_id] = await repository.key(line.key_id)
        for line, result in settlements:  # the ledger writes both in its next round
            settlement, metered = self._settlement(line, result, keys.get(line.key_id))
            self.ledger.settle(settlement)
            self.ledger.meter(metered)
        return written

    def _outcome(self, line: Waiting, result: InferenceCompleted) -> Outcome | None:
        """The line's answer from its result, or None: send it again (a refusal that waiting can fix)."""
        request_id = result.request_id
        try:
            ask = self.parse(line.endpoint, line.body)
        except ApiError as error:  # validated at upload; a changed catalogue can refuse it now
            return Outcome(line.line_no, line.custom_id, request_id, LineState.FAILED, refused(request_id, error))
        refusal = errors.from_result(result.status, result.reason, ask.model)
        if refusal is None:
            answer = Answer(result.text, max(result.tokens_in, prompt_tokens(ask.prompt)), result.tokens_out)
            response = answered(request_id, body(ask, answer, request_id, int(time.time())))
            done = LineState.DONE
            return Outcome(
                line.line_no, line.custom_id, request_id, done, response, None, answer.tokens_in, answer.tokens_out
            )
        if line.state is LineState.SENT and (
            refusal.code == OVERLOADED or (refusal.retryable and line.attempts < self.max_attempts)
        ):
            return None
        return Outcome(line.line_no, line.custom_id, request_id, LineState.FAILED, refused(request_id, refusal))

    def _settlement(self, line: Waiting, result: InferenceCompleted, key: ApiKey | None) -> tuple[Settlement, Metered]:
        """The claim the line was last sent under, settled to what the fleet reports, and the tenant's meter."""
        reserved = line.reserved or 0
        model = result.model_id
        try:  # a result without tokens_in (a refusal) still counts its prompt
            prompt = prompt_tokens(self.parse(line.endpoint, line.body).prompt)
        except ApiError:
            prompt = 0
        used = settled_tokens(reserved, prompt, result.tokens_in, result.tokens_out, answered=True)
        key_limits, tenant_limits = (key.limits, key.tenant.limits) if key else (Limits(), Limits())
        names = (f"key:{line.key_id}", f"tenant:{line.tenant_id}")
        budgeted = tuple(
            n for n, lim in zip(names, (key_limits, tenant_limits), strict=True) if lim.monthly_budget is not None
        )
        window = line.claim_window or datetime.now(UTC)
        cost = self.prices.cost(model, used)
        # The reservation's cost is recomputed as the runner priced it when it sent the line.
        settlement = Settlement(
            line.claim_id or "", names, window, reserved, used, self.prices.cost(model, reserved), cost, budgeted
        )
        counted = min(used, max(prompt, result.tokens_in))
        failed = 0 if result.status == "ok" else 1
        return settlement, Metered(line.tenant_id, model, counted, used - counted, cost, 1, failed)
