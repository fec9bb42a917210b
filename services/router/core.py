"""The router's hot path: read requests, admit, batch on a timer, dispatch, publish, commit."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from services.router.dispatch import Dispatcher, NotServed, Served
from services.router.domain.admission import Verdict, admit
from services.router.domain.batching import Batch, Batcher
from services.router.domain.cold_start import ColdStartHold
from services.router.domain.requests import Pending
from services.router.intake import read_request, ticket
from services.router.results import ResultSink
from services.router.settings import RouterSettings
from shared.deadletter import reason_for
from shared.events import MODEL_REQUESTS, ModelRequested, ResultStatus

log = logging.getLogger(__name__)


class RouterCore:
    """One per process. Everything runs on one event loop, so the core's state needs no locks."""

    def __init__(self, settings: RouterSettings, dispatcher: Dispatcher, sink: ResultSink) -> None:
        self.settings = settings
        self.dispatcher = dispatcher
        self.sink = sink
        self.batcher = Batcher(settings.limits, settings.deadline_margin_s)
        self.hold = ColdStartHold(settings.cold_start_timeout_s, settings.model_request_cooldown_s)
        self.inflight_rows: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._seq = 0

    def queued(self, model_id: str) -> int:
        """The model's requests in the router: in open batches, held, or in flight."""
        return self.batcher.depth(model_id) + self.hold.count(model_id) + self.inflight_rows.get(model_id, 0)

    async def intake(self, records: list[Any]) -> None:
        """Handle one poll's records in order."""
        now, wall = time.monotonic(), time.time()
        for number, record in enumerate(records, 1):
            if number % 64 == 0:  # let batches that came back publish between chunks of a large poll
                await asyncio.sleep(0)
            self.sink.tracker_received(record)
            self._seq += 1
            try:
                sampled = self.settings.trace_root_ratio >= 1.0 or random.random() < self.settings.trace_root_ratio
                request = read_request(record, self.sink.tracer, now, wall, self._seq, sampled)
            except ValidationError as error:
                await self.sink.dead_letter(record, reason_for(error))
                continue
            try:
                await self.admit(request, request.arrived)
            except Exception:  # keep consuming; the record's offset stays open, so it comes again
                log.exception("request %s could not be admitted", request.request_id)

    async def admit(self, request: Pending, now: float) -> None:
        """Batch, hold or reject one request."""
        model = request.model_id
        verdict = admit(
            request,
            now,
            self.queued(model),
            self.settings.max_queue_per_model,
            self.dispatcher.registry.knows_model(model),
            self.settings.cold_start_models,
        )
        if verdict.verdict is Verdict.REJECT:
            await self.sink.publish(request, ResultStatus.REJECTED, reason=verdict.reason)
        elif verdict.verdict is Verdict.HOLD:
            if self.hold.hold(request, now):
                held = self.hold.count(model)
                event = ModelRequested(source="router", model_id=model, region=request.region, pending_requests=held)
                await self.sink.event(MODEL_REQUESTS.name, event, model)
            self._wake.set()
        else:
            self.start_batches(self.batcher.add(request, now))
            self._wake.set()

    def start_batches(self, batches: list[Batch]) -> None:
        """Dispatch each closed batch in its own task."""
        for batch in batches:
            self.inflight_rows[batch.model_id] = self.inflight_rows.get(batch.model_id, 0) + len(batch.requests)
            self._spawn(self.run_batch(batch))

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def run_batch(self, batch: Batch) -> None:
        """Serve one batch and publish a result for every row, whatever happens."""
        rows = len(batch.requests)
        try:
            live = await self._drop_expired(batch)
            if live is None:
                return
            self.sink.batch_sent(live)
            try:
                outcome: Served | NotServed = await self.dispatcher.serve(live)
            except Exception as error:  # a bug must still end in one result per request
                log.exception("batch of %s failed in the router", live.model_id)
                outcome = NotServed(f"router error: {type(error).__name__}: {error}"[:500])
            await self._publish(live, outcome)
        finally:
            self.inflight_rows[batch.model_id] -= rows

    async def _drop_expired(self, batch: Batch) -> Batch | None:
        """Reject rows whose deadline passed while batching; the rest, or None when none is left."""
        now, live = time.monotonic(), []
        for request in batch.requests:
            # The wait for the batch to form ends when it closes; task start-up after that is overhead.
            ticket(request).batched_ms = max(0.0, batch.closed_at - request.arrived) * 1000
            if request.expired(now):
                await self.sink.publish(request, ResultStatus.REJECTED, reason="deadline passed while batching")
            else:
                live.append(request)
        return Batch(batch.key, tuple(live), batch.reason, batch.closed_at) if live else None

    async def _publish(self, batch: Batch, outcome: Served | NotServed) -> None:
        if isinstance(outcome, NotServed):
            for request in batch.requests:
                await self.sink.publish(request, ResultStatus.FAILED, reason=outcome.reason)
            return
        for request, done in zip(batch.requests, outcome.result.completions, strict=True):
            await self.sink.publish(
                request,
                ResultStatus.OK,
                text=done.text,
                server_id=outcome.server_id,
                tokens=(done.tokens_in, done.tokens_out),
                inference_ms=outcome.result.inference_ms,
            )

    def release(self, model_id: str) -> None:
        """A server now has the model: held requests join batches."""
        now = time.monotonic()
        for request in self.hold.release(model_id):
            self.start_batches(self.batcher.add(request, now))
        self._wake.set()

    async def reject_held(self, model_id: str, region: str | None, reason: str) -> None:
        """The model cannot come: reject its held requests with the reason."""
        for request in self.hold.reject(model_id, region):
            await self.sink.publish(request, ResultStatus.REJECTED, reason=reason)

    async def timer_loop(self) -> None:
        """Close batches when their wait is up and expire held requests, without waiting for arrivals."""
        while True:
            try:
                await self._tick(time.monotonic())
            except Exception:  # the timer must keep running, or batches would wait for arrivals
                log.exception("timer round failed")
            due = min((t for t in (self.batcher.next_due(), self.hold.next_expiry()) if t is not None), default=None)
            self._wake.clear()
            timeout = None if due is None else max(0.0, due - time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def _tick(self, now: float) -> None:
        self.start_batches(self.batcher.due(now))
        for request in self.hold.expire(now):
            await self.sink.publish(request, ResultStatus.REJECTED, reason=f"no server for {request.model_id} in time")

    async def drain(self, timeout_s: float) -> None:
        """Shutdown: close every open batch and wait for all batches to publish their results."""
        self.start_batches(self.batcher.drain(time.monotonic()))
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout_s)


async def consume_loop(consumer: AIOKafkaConsumer, core: RouterCore, stopping: asyncio.Event, poll_ms: int) -> None:
    """Read requests until `stopping` is set (records already read are all handled)."""
    while not stopping.is_set():
        polled = await consumer.getmany(timeout_ms=poll_ms, max_records=core.settings.max_poll_records)
        for records in polled.values():
            await core.intake(records)


async def every(interval_s: float, work: Callable[[], Awaitable[None]]) -> None:
    """Run `work` every interval until cancelled; a failed round is logged, the next one tries again."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            await work()
        except Exception as error:  # a background round must never end its loop; the next round retries
            log.warning("%s failed: %r", getattr(work, "__name__", work), error)


def partitions(offsets: dict[tuple[str, int], int]) -> dict[TopicPartition, int]:
    """Offsets keyed the way aiokafka wants them."""
    return {TopicPartition(topic, partition): offset for (topic, partition), offset in offsets.items()}
