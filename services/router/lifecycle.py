"""Start and stop the hot path: clients, loops, periodic commits, demand windows, health checks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from services.router.adapters.kafka_io import request_consumer, result_producer, subscribe_requests
from services.router.adapters.metrics import RouterMetrics
from services.router.core import RouterCore, consume_loop, every, partitions
from services.router.domain.demand import DemandWindow, percentile
from services.router.domain.offsets import OffsetTracker
from shared.events import DEMAND, DemandWindowReported

log = logging.getLogger(__name__)


class HotPath:
    """The router's request pipeline and its background loops, started and stopped as one."""

    consumer: AIOKafkaConsumer

    def __init__(self, core: RouterCore, tracker: OffsetTracker, demand: DemandWindow, metrics: RouterMetrics) -> None:
        self.core = core
        self.tracker = tracker
        self.demand = demand
        self.metrics = metrics
        self._stopping = asyncio.Event()
        self._consuming: asyncio.Task[None] | None = None
        self._background: list[asyncio.Task[None]] = []
        self._window_start = datetime.now(UTC)

    async def start(self) -> None:
        """Connect the producer and consumer and start every loop."""
        # aiokafka clients bind to the running loop, so they are made here, not in create_app.
        s = self.core.settings
        client_id = f"llmfleet-router-{s.instance_id}"
        self.core.sink.producer = result_producer(s.kafka_bootstrap, client_id)
        self.consumer = request_consumer(s.kafka_bootstrap, s.group_id, client_id, s.max_poll_records)
        await self.core.sink.producer.start()
        subscribe_requests(self.consumer, self.on_revoked, self.core.settings.requests_topic)
        await self.consumer.start()
        self._consuming = asyncio.create_task(consume_loop(self.consumer, self.core, self._stopping, 50))
        self._background = [
            asyncio.create_task(self.core.timer_loop()),
            asyncio.create_task(every(s.commit_interval_s, self.commit)),
            asyncio.create_task(every(s.demand_window_s, self.report_demand)),
            asyncio.create_task(every(s.health_interval_s, self.check_health)),
        ]

    async def stop(self) -> None:
        """Graceful stop: no new requests, finish open and in-flight batches, publish, commit."""
        self._stopping.set()
        if self._consuming is not None:
            with contextlib.suppress(asyncio.CancelledError, KafkaError):
                await asyncio.wait_for(self._consuming, 5.0)
        await self.core.drain(self.core.settings.shutdown_timeout_s)
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self.core.sink.producer.flush()
        await self.report_demand()
        await self.core.sink.producer.flush()
        with contextlib.suppress(KafkaError):
            await self.commit()
        await self.consumer.stop()
        await self.core.sink.producer.stop()
        await self.core.dispatcher.close()

    async def commit(self) -> None:
        """Commit every partition up to its first request whose result is not acknowledged yet."""
        offsets = self.tracker.committable()
        if offsets:
            await self.consumer.commit(partitions(offsets))
            self.tracker.mark_committed(offsets)

    async def on_revoked(self, revoked: list[TopicPartition]) -> None:
        """Before partitions move to another replica, commit what is done; open requests come again there."""
        with contextlib.suppress(KafkaError):
            await self.commit()
        self.tracker.forget([(tp.topic, tp.partition) for tp in revoked])

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
        """Queue depth per model and servers by state."""
        models = set(self.core.inflight_rows) | set(self.core.hold.held)
        models |= {m for placements in self.core.dispatcher.registry.placements.values() for m in placements}
        for model_id in models:
            self.metrics.queue_depth.labels(model_id).set(self.core.queued(model_id))
        for state, count in self.core.dispatcher.registry.count_by_state().items():
            self.metrics.servers.labels(state).set(count)

    async def check_health(self) -> None:
        """Readiness of every server; refresh gauges (cheap) at the same pace."""
        await self.core.dispatcher.check_health()
        self.refresh_gauges()
