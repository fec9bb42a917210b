"""`make bench-monitor`: alert delay end to end, and scrape targets one monitor process sustains.

1. Alert latency: for each of BREACHES fresh models a p95-over-threshold demand window is sent
   first (the rule goes pending), then a second one a for-duration later in event time; the delay
   is from sending that second event to Kafka to reading the firing AlertChanged back from Kafka
   (consumer -> inbox + rule evaluation + outbox in one transaction -> relay -> Kafka -> reader).
2. Targets: TARGET_LEVELS simulated Triton endpoints (paths of one loopback HTTP server in another
   process) are announced with ServerAllocated events and scraped by one monitor at a 5 s interval
   (each round: scrape, parse, sliding windows, judge; every report_interval_s, 15 s by default,
   also store and publish the windows: the slowest round is such a one); a level is sustained
   when every round finishes inside the interval without a scrape error.
The last line is one JSON object.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from sqlalchemy import func, select

from benchmarks import monitor_targets
from benchmarks.leftovers import forget_monitor_run
from benchmarks.local_stack import kafka_and_postgres
from deploy.local import kafka, postgres
from services.monitor.adapters.orm import alert_state, scrape_target
from services.monitor.app import create_app, migrate
from services.monitor.jobs import MonitorApp
from services.monitor.settings import MonitorSettings
from shared.events import (
    ALERTS,
    ALLOCATIONS,
    DEMAND,
    PRICES,
    SCALING_ACTIONS,
    DemandWindowReported,
    Event,
    ServerAllocated,
    ServerReleased,
)

BREACHES = int(os.environ.get("BENCH_MONITOR_BREACHES", "100"))
TARGET_LEVELS = [int(n) for n in os.environ.get("BENCH_MONITOR_TARGETS", "1000,1500,2000").split(",")]
ROUNDS = int(os.environ.get("BENCH_MONITOR_ROUNDS", "5"))  # 20 s: includes a reporting round
INTERVAL_S = 5.0


def settings() -> MonitorSettings:
    """Settings against the local stack, with a fresh consumer group."""
    return MonitorSettings(
        kafka_bootstrap=kafka.status().get("bootstrap", "127.0.0.1:9092"),
        database_url=postgres.database_url("monitor", postgres.status()),
        consumer_group=f"bench-monitor-{uuid.uuid4().hex[:8]}",
        scrape_interval_s=3600.0,  # rounds are driven (and timed) by the benchmark itself
        lag_check_interval_s=3600.0,
        scrape_timeout_s=INTERVAL_S / 2,
        scrape_concurrency=500,
    )


async def send(producer: AIOKafkaProducer, topic: str, key: str, event: Event) -> None:
    await producer.send_and_wait(topic, event.model_dump_json().encode(), key=key.encode())


def window(model_id: str, end: datetime, p95: float) -> DemandWindowReported:
    return DemandWindowReported(
        source="bench", model_id=model_id, region="bench", window_start=end - timedelta(seconds=30), window_end=end,
        requests=100, ok=100, tokens_in=1000, tokens_out=1000, latency_p95_ms=p95,
    )  # fmt: skip


async def alert_latencies(monitor: MonitorApp, producer: AIOKafkaProducer, run: str) -> list[float]:
    """Milliseconds from the breaching event sent to its firing alert read back, per breach."""
    bootstrap = monitor.settings.kafka_bootstrap
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await reader.start()
    partitions = [TopicPartition(ALERTS.name, p) for p in range(ALERTS.partitions)]
    reader.assign(partitions)
    await reader.seek_to_end(*partitions)
    t0 = datetime.now(UTC) - timedelta(hours=1)
    models = [f"bench-{run}-{i}" for i in range(BREACHES)]
    for model in models:  # pending first: the timed event is the one that completes the for-duration
        await send(producer, DEMAND.name, model, window(model, t0, 3500))
    # Every consumer has joined and every rule is pending before the clock starts.
    await _until(lambda: _in_phase(monitor, f"model_id=bench-{run}-%", "pending"), BREACHES)
    delays = []
    try:
        for model in models:
            started = time.perf_counter()
            await send(producer, DEMAND.name, model, window(model, t0 + timedelta(seconds=60), 3600))
            while not await _fired(reader, model):
                pass
            delays.append((time.perf_counter() - started) * 1000)
        for model in models:  # resolve them all again, so the benchmark leaves nothing firing
            await send(producer, DEMAND.name, model, window(model, t0 + timedelta(seconds=90), 1000))
        await _until(lambda: _in_phase(monitor, f"model_id=bench-{run}-%", "ok"), BREACHES)
    finally:
        await reader.stop()
    return delays


async def _fired(reader: AIOKafkaConsumer, model: str) -> bool:
    batch = await reader.getmany(timeout_ms=200)
    for records in batch.values():
        for record in records:
            alert = json.loads(record.value)
            if alert["scope"].get("model_id") == model and alert["state"] == "firing":
                return True
    return False


async def targets_round(
    monitor: MonitorApp, producer: AIOKafkaProducer, port: int, count: int, run: str
) -> dict[str, float]:
    """Announce `count` simulated targets, scrape them ROUNDS times at the interval, release them."""
    level = f"bench-{run}-t{count}-"
    announced: list[str] = []  # each one gets its ServerReleased, however the round ends
    durations: list[float] = []
    try:
        for i in range(count):
            server_id, url = f"{level}{i}", f"http://127.0.0.1:{port}/metrics/{i}"
            event = ServerAllocated(source="bench", server_id=server_id, endpoint=f"127.0.0.1:{port}",
                                    metrics_url=url, region=f"bench-{i % 4}", gpu_type="a100_80gb",
                                    cost_per_hour=4.1)  # fmt: skip
            announced.append(server_id)
            await producer.send(ALLOCATIONS.name, event.model_dump_json().encode(), key=server_id.encode())
        await producer.flush()
        await _until_targets(monitor, f"{level}%", count)
        for _ in range(ROUNDS):
            started = time.perf_counter()
            await monitor.collector.run_round()
            durations.append(time.perf_counter() - started)
            await asyncio.sleep(max(0.0, INTERVAL_S - durations[-1]))
        errors = await _scrape_errors(monitor, f"{level}%")
    finally:  # released even when a round fails, so no simulated target outlives the benchmark
        await _release(producer, announced)
        await _until_targets(monitor, f"{level}%", 0)
    return {
        "targets": count,
        "round_p50_s": statistics.median(durations),
        "round_max_s": max(durations),
        "errors": errors,
    }


async def _release(producer: AIOKafkaProducer, server_ids: list[str]) -> None:
    """A ServerReleased for each server, on the shared allocations topic every service follows."""
    for server_id in server_ids:
        release = ServerReleased(source="bench", server_id=server_id, region="bench")
        await producer.send(ALLOCATIONS.name, release.model_dump_json().encode(), key=server_id.encode())
    await producer.flush()


async def _in_phase(monitor: MonitorApp, pattern: str, phase: str) -> int:
    state = alert_state.c
    async with monitor.runtime.sessions() as session:
        query = select(func.count()).where(
            state.rule == "latency_p95_high", state.scope_key.like(pattern), state.phase == phase
        )
        return int((await session.execute(query)).scalar_one())


async def _until(count: Callable[[], Awaitable[int]], wanted: int, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while await count() != wanted:
        if time.monotonic() > deadline:
            raise TimeoutError(f"never reached {wanted}")
        await asyncio.sleep(0.5)


async def _count(monitor: MonitorApp, pattern: str, *conditions: object) -> int:
    async with monitor.runtime.sessions() as session:
        query = select(func.count()).select_from(scrape_target).where(scrape_target.c.server_id.like(pattern))
        return int((await session.execute(query.where(*conditions))).scalar_one())  # type: ignore[arg-type]


async def _until_targets(monitor: MonitorApp, pattern: str, count: int) -> None:
    await _until(lambda: _count(monitor, pattern), count)


async def _scrape_errors(monitor: MonitorApp, pattern: str) -> int:
    return await _count(monitor, pattern, scrape_target.c.last_error.is_not(None))


async def run() -> dict[str, object]:
    """Both measurements against the local Kafka and PostgreSQL; the run's rows removed afterwards."""
    run_id = uuid.uuid4().hex[:8]  # every model and server id of this run starts with bench-<run_id>-
    config = settings()
    await asyncio.to_thread(migrate, config)
    _app, monitor = create_app(config)
    topics = [
        TopicPartition(t.name, p) for t in (ALLOCATIONS, DEMAND, PRICES, SCALING_ACTIONS) for p in range(t.partitions)
    ]
    await _start_group_at_end(config, topics)
    producer = AIOKafkaProducer(bootstrap_servers=config.kafka_bootstrap, acks="all", linger_ms=5)
    await producer.start()
    port = monitor_targets.free_port()
    server = monitor_targets.start(port)
    try:
        async with monitor.runtime.broker:
            await monitor.runtime.broker.start()
            await monitor.start()
            try:
                delays = await alert_latencies(monitor, producer, run_id)
                levels = [await targets_round(monitor, producer, port, n, run_id) for n in TARGET_LEVELS]
            finally:
                await monitor.stop()
    finally:
        server.kill()
        await producer.stop()
        try:  # its scrape targets, windows and alert states would otherwise stay in the monitor's schema
            await forget_monitor_run(monitor.runtime.sessions, f"bench-{run_id}-")
        finally:
            await monitor.runtime.close()
    return _figures(delays, levels)


async def _start_group_at_end(config: MonitorSettings, partitions: list[TopicPartition]) -> None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=config.kafka_bootstrap, group_id=config.group_id, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.commit(dict(await consumer.end_offsets(partitions)))
    finally:
        await consumer.stop()


def _figures(delays: list[float], levels: list[dict[str, float]]) -> dict[str, object]:
    ordered = sorted(delays)
    sustained = [lv for lv in levels if lv["round_max_s"] < INTERVAL_S and lv["errors"] == 0]
    return {
        "alert_latency_p50_ms": round(statistics.median(ordered), 1),
        "alert_latency_p99_ms": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 1),
        "alert_latency_max_ms": round(ordered[-1], 1),
        "breaches": len(delays),
        "targets_sustained": int(max((lv["targets"] for lv in sustained), default=0)),
        "scrape_interval_s": INTERVAL_S,
        "levels": levels,
    }


def main() -> None:
    """Run the benchmark and print its figures; the last line is JSON."""
    with kafka_and_postgres():
        figures = asyncio.run(run())
    print(f"alert latency over {figures['breaches']} breaches: p50 {figures['alert_latency_p50_ms']} ms, "
          f"p99 {figures['alert_latency_p99_ms']} ms, max {figures['alert_latency_max_ms']} ms")  # fmt: skip
    for level in figures["levels"]:  # type: ignore[attr-defined]
        print(f"{level['targets']} targets at a {INTERVAL_S:g} s interval: round p50 {level['round_p50_s']:.2f} s, "
              f"max {level['round_max_s']:.2f} s, scrape errors {level['errors']}")  # fmt: skip
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
