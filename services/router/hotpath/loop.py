"""Start and stop the hot path: clients, supervised loops, commits, rebalances, liveness.

Every loop runs under supervision: one that ends while the router is not stopping (an
exception, or a return) is reported to `on_failure`, which by default logs the traceback and
ends the process non-zero, so its supervisor restarts it. The consume loop's heartbeat is the
liveness check: a loop stuck in one record fails `/live`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from services.router.adapters.answered import answered_between, first_timestamps
from services.router.adapters.kafka_io import committed_offsets, request_consumer, result_producer, subscribe_requests
from services.router.adapters.metrics import RouterMetrics
from services.router.domain.demand import DemandWindow, percentile
from services.router.domain.offsets import CommitNote, OffsetTracker, Partition
from services.router.hotpath.pipeline import RouterCore
from shared.events import DEMAND, DemandWindowReported
from shared.jobs import every

log = logging.getLogger(__name__)


def partitions(offsets: dict[Partition, tuple[int, str]]) -> dict[TopicPartition, tuple[int, str]]:
    """Offsets keyed the way aiokafka wants them."""
    return {TopicPartition(topic, partition): point for (topic, partition), point in offsets.items()}


class HotPath:
    """The router's request pipeline and its background loops, started and stopped as one."""

    consumer: AIOKafkaConsumer

    def __init__(
        self,
        core: RouterCore,
        tracker: OffsetTracker,
        demand: DemandWindow,
        metrics: RouterMetrics,
        on_failure: Callable[[BaseException], None],
    ) -> None:
        self.core = core
        self.tracker = tracker
        self.demand = demand
        self.metrics = metrics
        self.on_failure = on_failure
        self.heartbeat = time.monotonic()
        self._stopping = asyncio.Event()
        # Clear while an assignment is being set up: records of new partitions wait until the
        # commit notes (and any read-back of results) say which of them are answered already.
        self._assignment_ready = asyncio.Event()
        self._assignment_ready.set()
        self._tasks: list[asyncio.Task[None]] = []
        self._window_start = datetime.now(UTC)

    async def start(self) -> None:
        """Connect the producer and consumer and start every loop."""
        # aiokafka clients bind to the running loop, so they are made here, not in create_app.
        s = self.core.settings
        self.core.on_failure = self.on_failure
        client_id = f"llmfleet-router-{s.instance_id}"
        self.core.sink.producer = result_producer(s.kafka_bootstrap, client_id)
        self.consumer = request_consumer(
            s.kafka_bootstrap, s.group_id, client_id, s.max_poll_records, s.fetch_max_bytes
        )
        await self.core.sink.producer.start()
        subscribe_requests(self.consumer, self.on_revoked, self.on_assigned, s.requests_topic)
        await self.consumer.start()
        self.heartbeat = time.monotonic()
        self._supervise("consume", self.consume())
        self._supervise("timer", self.core.timer_loop())
        self._supervise("commit", every(s.commit_interval_s, self.commit, "router.commit"))
        self._supervise("demand", every(s.demand_window_s, self.report_demand, "router.demand"))
        self._supervise("health", every(s.health_interval_s, self.check_health, "router.health"))

    def _supervise(self, name: str, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work, name=f"router.{name}")
        task.add_done_callback(self._ended)
        self._tasks.append(task)

    def _ended(self, task: asyncio.Task[None]) -> None:
        if self._stopping.is_set() or task.cancelled():
            return
        error = task.exception() or RuntimeError(f"{task.get_name()} returned while the router runs")
        self.on_failure(error)

    def live(self) -> tuple[bool, str]:
        """Whether the consume loop turns (it polls at least every 50 ms, also while paused)."""
        age = time.monotonic() - self.heartbeat
        ok = age < self.core.settings.liveness_stall_s
        return ok, f"consume loop last turned {age:.1f} s ago"

    async def consume(self) -> None:
        """Read requests until stopping; a full router stops fetching (Kafka holds the rest)."""
        while not self._stopping.is_set():
            self.heartbeat = time.monotonic()
            room = self.core.room()
            if room == 0:
                self.consumer.pause(*self.consumer.assignment())
            elif paused := self.consumer.paused():
                self.consumer.resume(*paused)
            self.metrics.paused.set(1 if room == 0 else 0)
            max_records = max(1, min(room, self.core.settings.max_poll_records))
            polled = await self.consumer.getmany(timeout_ms=50, max_records=max_records)
            if polled and not self._assignment_ready.is_set():
                await self._assignment_ready.wait()  # aiokafka fetches while the listener still runs
            for records in polled.values():
                await self.core.intake(records, self.tracker.owns)

    async def stop(self) -> None:
        """Graceful stop: no new requests, finish open and in-flight batches, publish, commit."""
        self._stopping.set()
        s = self.core.settings
        consuming = self._tasks[0] if self._tasks else None
        if consuming is not None:
            with contextlib.suppress(asyncio.CancelledError, KafkaError, TimeoutError):
                await asyncio.wait_for(consuming, 5.0)
        await self.core.drain(s.shutdown_timeout_s)
        for task in self._tasks[1:]:
            task.cancel()
        await asyncio.gather(*self._tasks[1:], return_exceptions=True)
        settled = True
        try:
            await self.core.sink.delivery.settle(s.shutdown_timeout_s)
        except TimeoutError:
            settled = False
        self.core.sink.delivery.cancel()
        with contextlib.suppress(Exception):  # the demand window is a report; losing the last one is tolerable
            await self.report_demand()
            await self.core.sink.producer.flush()
        with contextlib.suppress(KafkaError):
            await self.commit(final=settled and not self.core.busy())
        await self.consumer.stop()
        await self.core.sink.producer.stop()
        await self.core.dispatcher.close()

    async def commit(self, only: set[Partition] | None = None, final: bool = False) -> None:
        """Commit each partition up to its first unanswered request, with the answered ones after it.

        `final`: this owner hands the partitions over with nothing in flight (a graceful stop or
        revocation), so the next owner need not look for results written after the commit.
        """
        offsets = self.tracker.committable(int(time.time() * 1000), final)
        if only is not None:
            self.tracker.commit_failed({p: v for p, v in offsets.items() if p not in only})  # next round
            offsets = {p: point for p, point in offsets.items() if p in only}
        if not offsets:
            return
        try:
            await self.consumer.commit(partitions(offsets))
        except BaseException:
            self.tracker.commit_failed(offsets)
            raise
        self.tracker.mark_committed(offsets)

    async def on_revoked(self, revoked: list[TopicPartition]) -> None:
        """Before partitions move: finish their in-flight results (bounded), commit, let go of the rest.

        Held (cold-start) requests are not waited for: the new owner reads them again, and the
        commit's metadata tells it which later requests are answered already.
        """
        moving = {(tp.topic, tp.partition) for tp in revoked}
        self.core.flush_open_batches()
        left_behind = self.core.abandon(moving)
        give_up = time.monotonic() + self.core.settings.rebalance_drain_s
        while self.tracker.pending(list(moving)) > left_behind and time.monotonic() < give_up:  # noqa: ASYNC110
            await asyncio.sleep(0.02)  # acks arrive as callbacks; polling the count is the simple way
        drained = self.tracker.pending(list(moving)) <= left_behind
        with contextlib.suppress(KafkaError, TimeoutError):
            await asyncio.wait_for(self.core.sink.producer.flush(), 5.0)
        try:
            await self.commit(moving, final=drained)
        except KafkaError as error:  # the new owner reads the results back instead (see on_assigned)
            log.warning("commit on revocation failed: %r", error)
        self.tracker.forget(list(moving))
        self.core.gate.repeats.drop(moving)

    async def on_assigned(self, assigned: list[TopicPartition]) -> None:
        """Own the partitions; learn from each commit's metadata which later requests are answered."""
        self._assignment_ready.clear()
        try:
            await self._set_up(assigned)
        finally:
            self._assignment_ready.set()

    async def _set_up(self, assigned: list[TopicPartition]) -> None:
        committed = await committed_offsets(self.consumer, assigned) if assigned else {}
        unsure: dict[Partition, CommitNote] = {}
        for tp in assigned:
            point = committed.get(tp)
            offset = point.offset if point is not None and point.offset >= 0 else None
            note = self.tracker.assigned(
                (tp.topic, tp.partition), offset, point.metadata if point is not None else None
            )
            if offset is not None and not note.final:  # a crash, a failed hand-over, or another writer
                unsure[(tp.topic, tp.partition)] = note
        if unsure:
            await self.read_back_results(unsure)

    async def read_back_results(self, unsure: dict[Partition, CommitNote]) -> None:
        """The last owner did not hand over gracefully: find what it answered after its last commit.

        Results of requests at or after the committed offset were written after that request
        reached Kafka, and (when the commit carries its time) after the commit; so the scan
        starts at the later of the two, less a second for clocks.
        """
        s = self.core.settings
        tps = [TopicPartition(*p) for p in unsure]
        ends = await self.consumer.end_offsets(tps)
        committed = {tp: self.tracker.commit_start(p) for tp, p in zip(tps, unsure, strict=True)}
        behind = {tp: offset for tp, offset in committed.items() if offset is not None and offset < ends[tp]}
        if not behind:
            return
        firsts = await first_timestamps(s.kafka_bootstrap, behind, s.repeat_check_timeout_s)
        now_ms = int(time.time() * 1000)
        since, until = now_ms, 0
        for tp in behind:
            note = unsure[(tp.topic, tp.partition)]
            at = note.committed_at_ms
            since = min(since, max(firsts.get(tp, now_ms), at or 0) - 1_000)
            until = max(until, now_ms if at is None else min(now_ms, at + int(s.repeat_check_window_s * 1000)))
        found = await answered_between(
            s.kafka_bootstrap, self.core.gate.is_result_topic, since, until, s.repeat_check_timeout_s
        )
        self.core.gate.repeats.add(found, {(tp.topic, tp.partition): ends[tp] for tp in behind})
        log.info("partitions %s came without a final commit: %d results read back", sorted(unsure), len(found))

    async def report_demand(self) -> None:
        """Publish the window's demand per model and region, and refresh the gauges."""
        end = datetime.now(UTC)
        start, self._window_start = self._window_start, end
        for (model_id, region), c in self.demand.take().items():
            event = DemandWindowReported(
                source="router",
                model_id=model_id,
                region=region,
                window_start=start,
                window_end=max(end, start + timedelta(microseconds=1)),
                requests=c.requests,
                ok=c.ok,
                rejected=c.rejected,
                failed=c.failed,
                tokens_in=c.tokens_in,
                tokens_out=c.tokens_out,
                latency_p50_ms=percentile(c.latencies_ms, 0.5),
                latency_p95_ms=percentile(c.latencies_ms, 0.95),
                latency_p99_ms=percentile(c.latencies_ms, 0.99),
                batches=c.batches,
            )
            await self.core.sink.event(DEMAND.name, event, model_id)
        self.refresh_gauges()

    def refresh_gauges(self) -> None:
        """Queue depth per model (bounded labels), held requests, servers by state."""
        models = set(self.core.inflight_rows) | set(self.core.hold.held)
        models |= {m for placements in self.core.dispatcher.registry.placements.values() for m in placements}
        depth: dict[str, int] = {}
        for model_id in models:
            label = self.core.sink.labels.label(model_id)
            depth[label] = depth.get(label, 0) + self.core.queued(model_id)
        for label, count in depth.items():
            self.metrics.queue_depth.labels(label).set(count)
        self.metrics.held.set(self.core.held_requests)
        for state, count in self.core.dispatcher.registry.count_by_state().items():
            self.metrics.servers.labels(state).set(count)

    async def check_health(self) -> None:
        """Readiness of every server; release requests waiting for a server that is back."""
        await self.core.dispatcher.check_health()
        self.core.release_servable()
        self.refresh_gauges()
