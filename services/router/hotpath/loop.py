"""Start and stop the hot path: Kafka clients, supervised loops, commits, rebalances, liveness.

The loop drives the parts: it polls records into the intake, runs the pipeline's timer, commits
the offsets, hands partitions over on a rebalance, and runs the router's periodic jobs beside
its own loops (their last round comes after the drain). Every loop runs under supervision: one
that ends while the router is not stopping (an exception, or a return) is reported to
`on_failure`, which by default logs the traceback and ends the process non-zero, so its
supervisor restarts it. The consume loop's heartbeat is the liveness check: a loop stuck in one
record fails `/live`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from services.router.adapters.answered import answered_between, first_timestamps
from services.router.adapters.delivery import Delivery
from services.router.adapters.kafka_io import request_consumer, subscribe_requests
from services.router.adapters.metrics import RouterMetrics
from services.router.domain.offsets import CommitNote, Partition
from services.router.hotpath.gate import Gate
from services.router.hotpath.intake import Intake
from services.router.hotpath.offsets import Offsets
from services.router.hotpath.pipeline import RouterCore
from services.router.settings import RouterSettings
from shared.jobs import Job, every

log = logging.getLogger(__name__)


class Background(Protocol):
    """The periodic jobs that run beside the hot path's loops (`services.router.jobs`)."""

    def jobs(self) -> Sequence[Job]:
        """The jobs to start with the loops."""
        ...

    async def last_round(self) -> None:
        """What runs once more after the drain, before the final commit."""
        ...


class HotPath:
    """The router's request pipeline and its background loops, started and stopped as one."""

    consumer: AIOKafkaConsumer

    def __init__(
        self,
        settings: RouterSettings,
        core: RouterCore,
        intake: Intake,
        offsets: Offsets,
        delivery: Delivery,
        gate: Gate,
        metrics: RouterMetrics,
        background: Background,
        on_failure: Callable[[BaseException], None],
    ) -> None:
        self.settings = settings
        self.core = core
        self.intake = intake
        self.offsets = offsets
        self.delivery = delivery
        self.gate = gate
        self.metrics = metrics
        self.background = background
        self.on_failure = on_failure
        self.heartbeat = time.monotonic()
        self._stopping = asyncio.Event()
        self._jobs_stopping = asyncio.Event()  # set after the drain: the jobs run while requests drain
        # Clear while an assignment is being set up: records of new partitions wait until the
        # commit notes (and any read-back of results) say which of them are answered already.
        self._assignment_ready = asyncio.Event()
        self._assignment_ready.set()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Connect the producer and consumer and start every loop."""
        # aiokafka clients bind to the running loop, so they are made here, not in create_app.
        s = self.settings
        client_id = f"llmfleet-router-{s.instance_id}"
        self.consumer = request_consumer(
            s.kafka_bootstrap, s.group_id, client_id, s.max_poll_records, s.fetch_max_bytes, s.kafka_security
        )
        await self.delivery.start()
        subscribe_requests(self.consumer, self.on_revoked, self.on_assigned, s.requests_topic)
        await self.consumer.start()
        self.heartbeat = time.monotonic()
        self._supervise("router.consume", self.consume())
        self._supervise("router.timer", self.core.timer_loop())
        self._supervise("router.commit", every(s.commit_interval_s, self.commit, "router.commit"))
        for job in self.background.jobs():
            self._supervise(job.name, job.run(self._jobs_stopping))

    def _supervise(self, name: str, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work, name=name)
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
        ok = age < self.settings.liveness_stall_s
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
            max_records = max(1, min(room, self.settings.max_poll_records))
            polled = await self.consumer.getmany(timeout_ms=50, max_records=max_records)
            if polled and not self._assignment_ready.is_set():
                await self._assignment_ready.wait()  # aiokafka fetches while the listener still runs
            for records in polled.values():
                await self.intake.take(records)

    async def stop(self) -> None:
        """Graceful stop: no new requests, finish open and in-flight batches, publish, commit."""
        self._stopping.set()
        s = self.settings
        consuming = self._tasks[0] if self._tasks else None
        if consuming is not None:
            with contextlib.suppress(asyncio.CancelledError, KafkaError, TimeoutError):
                await asyncio.wait_for(consuming, 5.0)
        await self.core.drain(s.shutdown_timeout_s)
        self._jobs_stopping.set()
        for task in self._tasks[1:]:
            task.cancel()
        await asyncio.gather(*self._tasks[1:], return_exceptions=True)
        settled = True
        try:
            await self.delivery.settle(s.shutdown_timeout_s)
        except TimeoutError:
            settled = False
        self.delivery.cancel()
        with contextlib.suppress(Exception):  # the demand window is a report; losing the last one is tolerable
            await self.background.last_round()
            await self.delivery.flush()
        with contextlib.suppress(KafkaError):
            await self.commit(final=settled and not self.core.busy())
        await self.consumer.stop()
        await self.delivery.stop()

    async def commit(self, only: set[Partition] | None = None, final: bool = False) -> None:
        """Commit the owned partitions (or `only` these) up to their first unanswered request; see `Offsets.commit`."""
        await self.offsets.commit(self.consumer, only, final)

    async def on_revoked(self, revoked: list[TopicPartition]) -> None:
        """Before partitions move: finish their in-flight results (bounded), commit, let go of the rest.

        Held (cold-start) requests are not waited for: the new owner reads them again, and the
        commit's metadata tells it which later requests are answered already.
        """
        moving = {(tp.topic, tp.partition) for tp in revoked}
        self.core.flush_open_batches()
        left_behind = self.core.abandon(moving)
        give_up = time.monotonic() + self.settings.rebalance_drain_s
        while self.offsets.pending(moving) > left_behind and time.monotonic() < give_up:  # noqa: ASYNC110
            await asyncio.sleep(0.02)  # acks arrive as callbacks; polling the count is the simple way
        drained = self.offsets.pending(moving) <= left_behind
        with contextlib.suppress(KafkaError, TimeoutError):
            await asyncio.wait_for(self.delivery.flush(), 5.0)
        try:
            await self.commit(moving, final=drained)
        except KafkaError as error:  # the new owner reads the results back instead (see on_assigned)
            log.warning("commit on revocation failed: %r", error)
        self.offsets.forget(moving)
        self.gate.repeats.drop(moving)

    async def on_assigned(self, assigned: list[TopicPartition]) -> None:
        """Own the partitions; learn from each commit's metadata which later requests are answered."""
        self._assignment_ready.clear()
        try:
            unsure = await self.offsets.assign(self.consumer, assigned)
            if unsure:
                await self.read_back_results(unsure)
        finally:
            self._assignment_ready.set()

    async def read_back_results(self, unsure: dict[Partition, CommitNote]) -> None:
        """The last owner did not hand over gracefully: find what it answered after its last commit.

        Results of requests at or after the committed offset were written after that request
        reached Kafka, and (when the commit carries its time) after the commit; so the scan
        starts at the later of the two, less a second for clocks.
        """
        s = self.settings
        tps = [TopicPartition(*p) for p in unsure]
        ends = await self.consumer.end_offsets(tps)
        committed = {tp: self.offsets.commit_start(p) for tp, p in zip(tps, unsure, strict=True)}
        behind = {tp: offset for tp, offset in committed.items() if offset is not None and offset < ends[tp]}
        if not behind:
            return
        firsts = await first_timestamps(s.kafka_bootstrap, behind, s.repeat_check_timeout_s, s.kafka_security)
        now_ms = int(time.time() * 1000)
        since, until = now_ms, 0
        for tp in behind:
            note = unsure[(tp.topic, tp.partition)]
            at = note.committed_at_ms
            since = min(since, max(firsts.get(tp, now_ms), at or 0) - 1_000)
            until = max(until, now_ms if at is None else min(now_ms, at + int(s.repeat_check_window_s * 1000)))
        found = await answered_between(
            s.kafka_bootstrap, self.gate.is_result_topic, since, until, s.repeat_check_timeout_s, s.kafka_security
        )
        self.gate.repeats.add(found, {(tp.topic, tp.partition): ends[tp] for tp in behind})
        log.info("partitions %s came without a final commit: %d results read back", sorted(unsure), len(found))
