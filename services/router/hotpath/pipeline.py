"""The request pipeline: admit, hold for a cold start, batch on a timer, dispatch, settle every row.

Every request taken in ends in exactly one result (ok, rejected with the reason, failed with the
reason) unless its partition moves to another owner. Work the core starts in the background is
supervised: a task that dies unexpectedly is a bug, reported through `on_failure` (the process
then ends loudly and its supervisor restarts it; uncommitted requests come again).

Its public methods are the narrow interface the rest of the router uses: the loop (`room`,
`timer_loop`, `abandon`, `drain`), the intake (`accept`, `spawn`), the allocation handler
(`change_registry`, `reject_held`) and the jobs (`models`, `queued`, `release_servable`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from services.router.domain.admission import AdmissionLimits, ModelLoad, ServiceRate, Verdict, admit
from services.router.domain.batching import Batch, Batcher, group_key
from services.router.domain.cold_start import ColdStartHold
from services.router.domain.offsets import Partition
from services.router.domain.registry import Registry
from services.router.domain.requests import Pending
from services.router.hotpath.accounting import Accounting
from services.router.hotpath.dispatch import Dispatcher, NotServed, Served
from services.router.hotpath.gate import max_tokens
from services.router.hotpath.records import ticket
from services.router.hotpath.results import ResultPublisher
from services.router.settings import RouterSettings
from shared.events import MODEL_REQUESTS, ModelRequested, ResultStatus

log = logging.getLogger(__name__)


class RouterCore:
    """One per process. Everything runs on one event loop, so the core's state needs no locks."""

    def __init__(
        self,
        settings: RouterSettings,
        dispatcher: Dispatcher,
        results: ResultPublisher,
        accounting: Accounting,
        on_failure: Callable[[BaseException], None],
    ) -> None:
        self.settings = settings
        self.dispatcher = dispatcher
        self.results = results
        self.accounting = accounting
        self.on_failure = on_failure
        self.batcher = Batcher(settings.limits, settings.deadline_margin_s)
        self.hold = ColdStartHold(settings.cold_start_timeout_s, settings.model_request_cooldown_s)
        self.rates = ServiceRate()
        self.admission = AdmissionLimits(
            settings.max_queue_per_model,
            tuple(settings.cold_start_models),
            settings.max_cold_start_models,
            settings.shed_below_priority,
            settings.shed_queue_per_model,
        )
        self.inflight_rows: dict[str, int] = {}
        self.held_requests = 0  # admitted and not answered: open batches, cold-start hold, in flight
        self.held_bytes = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()

    # ------------------------------------------------------------------ load

    def queued(self, model_id: str) -> int:
        """The model's requests in the router: in open batches, held, or in flight."""
        return self.batcher.depth(model_id) + self.hold.count(model_id) + self.inflight_rows.get(model_id, 0)

    def models(self) -> set[str]:
        """The models with requests held for a server or in flight."""
        return set(self.inflight_rows) | set(self.hold.held)

    def room(self) -> int:
        """How many more requests may be read now; 0 (stop fetching) from 80% of a limit on.

        A poll reads at most `room()` records and `fetch_max_bytes`, so neither limit is passed by
        more than one fetch.
        """
        s = self.settings
        if self.held_bytes >= s.max_queued_bytes * 0.8 or self.held_requests >= s.max_queued_requests * 0.8:
            return 0
        return s.max_queued_requests - self.held_requests

    # ------------------------------------------------------------------ admission

    async def accept(self, request: Pending, refusal: str | None = None) -> None:
        """A request read: it holds its place until answered; rejected at once for `refusal`, else admitted."""
        self.held_requests += 1
        self.held_bytes += len(request.prompt)
        if refusal:
            self.spawn(self.answer(request, ResultStatus.REJECTED, reason=refusal))
            return
        await self.admit(request, request.arrived)

    async def admit(self, request: Pending, now: float) -> None:
        """Batch, hold or reject one request."""
        model = request.model_id
        load = ModelLoad(
            queued=self.queued(model),
            known=self.dispatcher.registry.knows_model(model),
            rate=self.rates.rate(model, now),
            max_tokens=max_tokens(self.settings.model_max_tokens, self.dispatcher.registry, model),
            held_models=len(self.hold.held),
            held=model in self.hold.held,
        )
        verdict = admit(request, now, load, self.admission)
        if verdict.verdict is Verdict.REJECT:
            self.spawn(self.answer(request, ResultStatus.REJECTED, reason=verdict.reason))
        elif verdict.verdict is Verdict.HOLD:
            self._hold(request, now)
        else:
            self._enqueue(request, now)
            self._wake.set()

    def _enqueue(self, request: Pending, now: float) -> None:
        """Into its group's batch; a streamed request goes out alone at once (its own Triton call).

        Waiting for a batch would delay its first token, and Triton's dynamic batcher still runs
        concurrent streams of one model as one batch on the server (docs/router.md).
        """
        if request.stream:
            self.start_batches([Batch(group_key(request), (request,), "stream", now)])
        else:
            self.start_batches(self.batcher.add(request, now))

    def _hold(self, request: Pending, now: float) -> None:
        """Wait for a server with the model, asking the fleet for one (once per cooldown and region)."""
        if self.hold.hold(request, now):
            held = self.hold.count(request.model_id)
            event = ModelRequested(
                source="router", model_id=request.model_id, region=request.region, pending_requests=held
            )
            self.spawn(self.results.event(MODEL_REQUESTS.name, event, request.model_id))
        self._wake.set()

    async def answer(self, request: Pending, status: ResultStatus, **result: Any) -> None:
        """Publish the request's one result and give its place in the process back."""
        try:
            await self.results.publish(request, status, **result)
        finally:
            self.held_requests -= 1
            self.held_bytes -= len(request.prompt)

    # ------------------------------------------------------------------ batches

    def start_batches(self, batches: list[Batch]) -> None:
        """Dispatch each closed batch in its own task."""
        for batch in batches:
            self.inflight_rows[batch.model_id] = self.inflight_rows.get(batch.model_id, 0) + len(batch.requests)
            self.spawn(self.run_batch(batch))

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` in a supervised task that shutdown waits for (a death is reported to `on_failure`)."""
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            self.on_failure(error)

    async def run_batch(self, batch: Batch) -> None:
        """Serve one batch and settle every row: a result, or back to waiting for a server."""
        rows = len(batch.requests)
        try:
            live = await self._drop_expired(batch)
            if live is None:
                return
            self.accounting.batch_sent(live)
            try:
                outcome: Served | NotServed = await self.dispatcher.serve(live)
            except Exception as error:  # a bug must still end in one result per request
                log.exception("batch of %s failed in the router", live.model_id)
                outcome = NotServed(f"router error: {type(error).__name__}: {error}"[:500])
            await self._settle(live, outcome)
        finally:
            self.inflight_rows[batch.model_id] -= rows
            if not self.inflight_rows[batch.model_id]:
                del self.inflight_rows[batch.model_id]  # bounded: model ids come from producers

    async def _drop_expired(self, batch: Batch) -> Batch | None:
        """Reject rows whose deadline passed while batching; the rest, or None when none is left."""
        now, live = time.monotonic(), []
        for request in batch.requests:
            # The wait for the batch to form ends when it closes; task start-up after that is overhead.
            ticket(request).batched_ms = max(0.0, batch.closed_at - request.arrived) * 1000
            if request.expired(now):
                await self.answer(request, ResultStatus.REJECTED, reason="deadline passed while batching")
            else:
                live.append(request)
        return Batch(batch.key, tuple(live), batch.reason, batch.closed_at) if live else None

    async def _settle(self, batch: Batch, outcome: Served | NotServed) -> None:
        if isinstance(outcome, Served):
            self.rates.record(batch.model_id, len(batch.requests), time.monotonic())
            for request, done in zip(batch.requests, outcome.result.completions, strict=True):
                await self.answer(
                    request,
                    ResultStatus.OK,
                    text=done.text,
                    server_id=outcome.server_id,
                    tokens=(done.tokens_in, done.tokens_out),
                    inference_ms=outcome.result.inference_ms,
                    first_token_ms=outcome.result.first_token_ms,
                )
        elif outcome.no_server:  # losing servers is a wait, as in a cold start, within the deadline
            now = time.monotonic()
            for request in batch.requests:
                self._hold(request, now)
        elif outcome.model_error and len(batch.requests) > 1:  # one bad row must not fail the others
            self.start_batches([Batch(batch.key, (r,), "split", batch.closed_at) for r in batch.requests])
        else:
            for request in batch.requests:
                await self.answer(request, ResultStatus.FAILED, reason=outcome.reason)

    def release(self, model_id: str) -> None:
        """A server now has the model: held requests join batches (or are rejected if over its limit)."""
        now = time.monotonic()
        for request in self.hold.release(model_id):
            limit = max_tokens(self.settings.model_max_tokens, self.dispatcher.registry, model_id)
            if limit is not None and request.max_tokens > limit:
                reason = f"max_tokens {request.max_tokens} exceeds {model_id}'s limit of {limit}"
                self.spawn(self.answer(request, ResultStatus.REJECTED, reason=reason))
            else:
                self._enqueue(request, now)
        self._wake.set()

    def change_registry(self, change: Callable[[Registry], None]) -> None:
        """Apply a change to the server registry; requests held for a model a server now has move on.

        A placement and its server may arrive in either order: held requests go once both are known.
        """
        change(self.dispatcher.registry)
        for model_id in list(self.hold.held):
            if self.dispatcher.registry.knows_model(model_id):
                self.release(model_id)

    def release_servable(self) -> None:
        """Release the held models that a healthy server has again (after a health check)."""
        for model_id in list(self.hold.held):
            if self.dispatcher.registry.candidates(model_id):
                self.release(model_id)

    async def reject_held(self, model_id: str, region: str | None, reason: str) -> None:
        """The model cannot come: reject its held requests with the reason."""
        for request in self.hold.reject(model_id, region):
            await self.answer(request, ResultStatus.REJECTED, reason=reason)

    def abandon(self, partitions: set[Partition]) -> int:
        """The partitions moved to another replica: forget their held requests, answer none of theirs.

        Requests in open batches or in flight are flagged, so their results are not sent; the new
        owner reads them again from the committed offset.
        """
        mine = lambda r: ticket(r).partition in partitions  # noqa: E731
        dropped = self.hold.take_where(mine)
        for request in dropped:
            ticket(request).abandoned = True
            ticket(request).span.end()
            self.held_requests -= 1
            self.held_bytes -= len(request.prompt)
        return len(dropped)

    def flush_open_batches(self) -> None:
        """Close every open batch now (a rebalance or shutdown is waiting for their results)."""
        self.start_batches(self.batcher.drain(time.monotonic()))

    # ------------------------------------------------------------------ timer and shutdown

    async def timer_loop(self) -> None:
        """Close batches when their wait is up and expire held requests, without waiting for arrivals."""
        while True:
            await self._tick(time.monotonic())
            due = min((t for t in (self.batcher.next_due(), self.hold.next_expiry()) if t is not None), default=None)
            self._wake.clear()
            timeout = None if due is None else max(0.0, due - time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def _tick(self, now: float) -> None:
        self.start_batches(self.batcher.due(now))
        for request in self.hold.expire(now):
            self.spawn(self.answer(request, ResultStatus.REJECTED, reason=f"no server for {request.model_id} in time"))
        self.rates.forget_idle(now)

    def busy(self) -> bool:
        """True while batches or publications are still running."""
        return bool(self._tasks)

    async def drain(self, timeout_s: float) -> None:
        """Shutdown: close every open batch and wait for all batches to publish their results."""
        self.flush_open_batches()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout_s)
