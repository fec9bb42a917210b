"""Replay planned requests into the platform as a Kafka producer, and record every result.

Requests are sent on the trace's (compressed) schedule through `FleetClient`; results are matched
by request id as they arrive. A run is over when every request has a result, or when the drain
timeout after the last send has passed (what is still missing is reported as missing).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from llmfleet.client import FleetClient
from llmfleet.events_recorder import EventRecorder
from llmfleet.run_data import RequestRecord
from llmfleet.trace import PlannedRequest, synthesise_prompt
from shared.events import InferenceCompleted, InferenceRequested, RoutingStrategy


@dataclass(frozen=True)
class Progress:
    """A snapshot for the live display."""

    elapsed_s: float
    planned: int
    sent: int
    completed: int
    ok: int
    rejected: int
    failed: int
    p95_ms: float | None  # end-to-end, ok requests so far
    servers: int
    alerts_firing: int
    sending_done: bool

    @property
    def in_flight(self) -> int:
        return self.sent - self.completed


@dataclass(frozen=True)
class ReplayOutcome:
    started_at: datetime
    records: list[RequestRecord]
    send_wall_s: float
    drain_wall_s: float
    duplicate_results: int


class _Tracker:
    """Records keyed by request id; a result for an id not sent here, or a second one, is ignored."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.records: dict[str, RequestRecord] = {}
        self.completed = 0
        self.by_status: Counter[str] = Counter()
        self.duplicates = 0
        self.all_done = asyncio.Event()
        self.sending_done = False
        self._latencies_ms: list[float] = []

    def on_result(self, result: InferenceCompleted) -> None:
        record = self.records.get(result.request_id)
        if record is None:
            return
        if record.status is not None:
            self.duplicates += 1  # at-least-once delivery: the first result counts
            return
        record.completed_s = self.clock()
        record.status = result.status.value
        record.reason = result.reason
        record.server_id = result.server_id
        record.tokens_out = result.tokens_out
        record.router_total_ms = result.timings.total_ms
        self.completed += 1
        self.by_status[record.status] += 1
        if record.status == "ok" and record.latency_s is not None:
            self._latencies_ms.append(record.latency_s * 1000)
        if self.sending_done and self.completed == len(self.records):
            self.all_done.set()

    def p95_ms(self) -> float | None:
        if not self._latencies_ms:
            return None
        ordered = sorted(self._latencies_ms)
        return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


async def replay(
    bootstrap: str,
    planned: Sequence[PlannedRequest],
    run_id: str,
    routing: RoutingStrategy = RoutingStrategy.BALANCED,
    drain_timeout_s: float = 120.0,
    recorder: EventRecorder | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    progress_interval_s: float = 1.0,
) -> ReplayOutcome:
    """Send `planned` on schedule, await every result (bounded by `drain_timeout_s`), return the records."""
    origin = time.monotonic()
    started_at = datetime.now(UTC)

    def clock() -> float:
        return time.monotonic() - origin

    if recorder is not None:
        recorder.set_clock(clock)
    tracker = _Tracker(clock)
    async with FleetClient(bootstrap, source=f"replay-{run_id}", on_result=tracker.on_result) as fleet:
        reporter = asyncio.create_task(_report(tracker, len(planned), recorder, on_progress, progress_interval_s))
        try:
            send_wall_s = await _send_all(fleet, planned, run_id, routing, tracker)
            last_send = clock()
            tracker.sending_done = True
            if tracker.completed == len(tracker.records):
                tracker.all_done.set()
            with contextlib.suppress(TimeoutError):  # what has no result by then is reported as missing
                await asyncio.wait_for(tracker.all_done.wait(), drain_timeout_s)
            drain_wall_s = clock() - last_send
        finally:
            reporter.cancel()
            await asyncio.gather(reporter, return_exceptions=True)
    if on_progress is not None:
        on_progress(_snapshot(tracker, len(planned), recorder))
    records = list(tracker.records.values())
    return ReplayOutcome(started_at, records, send_wall_s, drain_wall_s, tracker.duplicates)


async def _send_all(
    fleet: FleetClient, planned: Sequence[PlannedRequest], run_id: str, routing: RoutingStrategy, tracker: _Tracker
) -> float:
    first_sent: float | None = None
    for request in sorted(planned, key=lambda p: p.send_at_s):
        delay = request.send_at_s - tracker.clock()
        if delay > 0:
            await asyncio.sleep(delay)
        request_id = f"{run_id}-{request.index}"
        record = RequestRecord(
            request_id=request_id,
            model_id=request.model_id,
            region=request.region,
            trace_offset_s=request.trace_offset_s,
            scheduled_s=request.send_at_s,
            prompt_tokens=request.prompt_tokens,
            trace_output_tokens=request.trace_output_tokens,
            max_tokens=request.max_tokens,
        )
        tracker.records[request_id] = record
        record.sent_s = tracker.clock()
        first_sent = record.sent_s if first_sent is None else first_sent
        event = InferenceRequested(
            source=f"replay-{run_id}",
            request_id=request_id,
            model_id=request.model_id,
            prompt=synthesise_prompt(request.prompt_tokens, request.index),
            max_tokens=request.max_tokens,
            user_region=request.region,
            routing_strategy=routing,
        )
        await fleet.send_request(event, track=False)
    return tracker.clock() - (first_sent or 0.0)


async def _report(
    tracker: _Tracker,
    planned: int,
    recorder: EventRecorder | None,
    on_progress: Callable[[Progress], None] | None,
    interval_s: float,
) -> None:
    if on_progress is None:
        return
    while True:
        on_progress(_snapshot(tracker, planned, recorder))
        await asyncio.sleep(interval_s)


def _snapshot(tracker: _Tracker, planned: int, recorder: EventRecorder | None) -> Progress:
    return Progress(
        elapsed_s=tracker.clock(),
        planned=planned,
        sent=len(tracker.records),
        completed=tracker.completed,
        ok=tracker.by_status["ok"],
        rejected=tracker.by_status["rejected"],
        failed=tracker.by_status["failed"],
        p95_ms=tracker.p95_ms(),
        servers=recorder.live_servers() if recorder else 0,
        alerts_firing=recorder.alerts_firing() if recorder else 0,
        sending_done=tracker.sending_done,
    )
