"""`make bench-gateway`: OpenAI HTTP -> gateway -> Kafka -> router -> Triton (echo) and back, on the local stack.

Starts its own Triton server, private request/result topics, one router process and one gateway
process (`python -m services.gateway`, limits on: a tenant and key with generous RPM/TPM/
concurrency and monthly budget, so every request takes the real admission, budget and settlement path), then measures:
(a) `gateway_rps`: non-streaming echo completions through one gateway process, closed loop;
(b) `gateway_overhead_p50_ms` / `gateway_overhead_p99_ms`: the latency the gateway adds over a
    direct Kafka request, per call: the HTTP round trip at the client minus the Kafka round trip
    the gateway itself waited for (its `x-llmfleet-upstream-ms`: produce, router, Triton, result).
    Direct Kafka requests are paced alongside at the same rate; `gateway_vs_direct_*` compares the
    two latency distributions percentile by percentile (noisier: two populations).
(c) `ttft_p50_ms` / `ttft_p99_ms`: time to the first token of streamed tinylm completions (its
    decoupled variant, tinylm_stream), with their total and the same calls' unstreamed total
    (benchmarks/gateway_streaming.py).
(d) `batch_lines_per_s`: a Batch API batch of echo completions, and `batch_validate_50k_s`: a
    50,000-line input file checked and stored (benchmarks/gateway_batches.py).
The last line is one JSON object.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp

from benchmarks.gateway_batches import BATCH_LINES, batch_env, batch_figures
from benchmarks.gateway_streaming import STREAM_TOKENS, time_to_first_token
from benchmarks.leftovers import forget_gateway_tenant
from benchmarks.local_stack import kafka_and_postgres
from benchmarks.router_driver import Driver, percentiles
from benchmarks.router_stack import ROOT, private_topics, router_env, router_process, triton_server
from deploy.init import provision
from deploy.local import postgres, triton
from deploy.local.common import free_port
from services.gateway.adapters.repository import gateway_store
from services.gateway.app import migrate
from services.gateway.domain.limits import Limits
from services.gateway.settings import GatewaySettings
from services.gateway.use_cases import keys as admin
from shared.db import create_engine, session_factory

RPS_REQUESTS, RPS_CONCURRENCY = int(os.environ.get("BENCH_GATEWAY_REQUESTS", "10000")), 128
PACED_RPS, PACED_SECONDS = 200, 5
MAX_TOKENS = 8


def gateway_env(bootstrap: str, requests_topic: str, port: int, metrics_port: int) -> dict[str, str]:
    """Environment of the gateway process: the private request topic, echo and tinylm, no allocation replay."""
    values = {
        "KAFKA_BOOTSTRAP": bootstrap,
        "DATABASE_URL": postgres.database_url("gateway", postgres.status()),
        "INSTANCE_ID": f"bench-{uuid.uuid4().hex[:6]}",
        "REQUESTS_TOPIC": requests_topic,
        "HTTP_PORT": str(port),
        "METRICS_PORT": str(metrics_port),
        "FOLLOW_ALLOCATIONS": "false",
        "MODELS": json.dumps({"echo": {}, "tinylm": {}}),
        "DB_POOL_SIZE": "10",
        **batch_env(),
    }
    return {**os.environ, **{f"LLMFLEET_GATEWAY_{k}": v for k, v in values.items()}}


@contextlib.contextmanager
def gateway_process(env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """`python -m services.gateway`; SIGTERM (graceful) afterwards."""
    log = open(ROOT / ".cache" / "bench-gateway.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen([sys.executable, "-m", "services.gateway"], env=env, cwd=ROOT, stdout=log, stderr=log)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@dataclass(frozen=True)
class BenchTenant:
    """The run's tenant and key in the gateway's schema (removed when the run ends)."""

    url: str
    tenant_id: str
    key_id: str
    secret: str


async def prepare_database() -> BenchTenant:
    """The gateway role and schema (idempotent), migrated; a tenant and key for the run."""
    info = postgres.status()
    admin_url = f"postgresql+asyncpg://{postgres.SUPERUSER}:{postgres.role_password('admin')}@{info['host']}:{info['port']}/{info['database']}"
    await provision(admin_url, postgres.role_password)
    url = postgres.database_url("gateway", info)
    await asyncio.to_thread(migrate, GatewaySettings(database_url=url))
    engine = create_engine(url, "gateway", pool_size=1)
    try:
        store = gateway_store(session_factory(engine))
        # A monthly budget too ($100M): every call also takes the budget's month row and its settlement.
        budget = 10**17  # nano-dollars
        limits = Limits(rpm=10_000_000, tpm=1_000_000_000, concurrency=10_000, monthly_budget=budget)
        name, generous = f"bench-{uuid.uuid4().hex[:8]}", limits
        tenant = await admin.create_tenant(store, name, generous)
        created = await admin.create_key(store, name, "bench", (), generous)
        return BenchTenant(url, tenant.tenant_id, created.record.key_id, created.secret)
    finally:
        await engine.dispose()


async def forget_tenant(bench: BenchTenant) -> None:
    """Remove the run's tenant, key and their usage rows, so no later run lists or counts them."""
    engine = create_engine(bench.url, "gateway", pool_size=1)
    try:
        await forget_gateway_tenant(session_factory(engine), bench.tenant_id, bench.key_id)
    finally:
        await engine.dispose()


class Http:
    """The OpenAI client side of the benchmark: one pooled session, one call timed per request."""

    def __init__(self, base: str, key: str) -> None:
        self.url = f"{base}/v1/completions"
        self.headers = {"Authorization": f"Bearer {key}"}
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=RPS_CONCURRENCY))

    async def call(self, request_id: str) -> tuple[int, float, float]:
        """One echo completion: its HTTP status, seconds taken, and seconds the gateway waited for the fleet."""
        body = {"model": "echo", "prompt": f"benchmark prompt {request_id}: the fleet", "max_tokens": MAX_TOKENS}
        started = time.perf_counter()
        async with self.session.post(self.url, json=body, headers=self.headers) as response:
            await response.read()
            upstream = float(response.headers.get("x-llmfleet-upstream-ms", "nan")) / 1000
            return response.status, time.perf_counter() - started, upstream

    async def ready(self, base: str, timeout: float = 60.0) -> None:
        """Until /ready answers 200 and a completion succeeds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(aiohttp.ClientError):
                async with self.session.get(f"{base}/ready") as response:
                    if response.status == 200 and (await self.call("warm"))[0] == 200:
                        return
            await asyncio.sleep(0.5)
        raise TimeoutError("the gateway did not become ready; see .cache/bench-gateway.log")


async def closed_loop(http: Http) -> dict[str, float]:
    """(a) RPS_CONCURRENCY callers, RPS_REQUESTS calls in all, as fast as they come back."""
    todo = iter(range(RPS_REQUESTS))
    statuses: list[int] = []

    async def caller() -> None:
        for i in todo:
            statuses.append((await http.call(f"rps-{i}"))[0])

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(RPS_CONCURRENCY)))
    elapsed = time.perf_counter() - started
    return {"gateway_rps": round(len(statuses) / elapsed, 1), "gateway_rps_ok": statuses.count(200)}


async def paced(http: Http, rate: int, seconds: float) -> list[tuple[float, float]]:
    """Gateway calls at `rate` per second in 10 ms ticks; each one's milliseconds and its upstream part (ok only)."""
    per_tick, tasks = max(1, rate // 100), []
    started = time.perf_counter()
    for tick in range(int(seconds * 100)):
        tasks += [asyncio.create_task(http.call(f"paced-{tick}-{i}")) for i in range(per_tick)]
        await asyncio.sleep(max(0.0, started + (tick + 1) / 100 - time.perf_counter()))
    return [(took * 1000, upstream * 1000) for status, took, upstream in await asyncio.gather(*tasks) if status == 200]


async def stage_totals(http: Http, metrics_url: str) -> dict[str, tuple[float, float]]:
    """The gateway's own stage histograms: (seconds, calls) per stage so far."""
    async with http.session.get(metrics_url) as response:
        text = await response.text()
    found = re.findall(r'^llmfleet_gateway_stage_seconds_(sum|count)\{stage="(\w+)"\} (\S+)$', text, re.MULTILINE)
    totals: dict[str, dict[str, float]] = {}
    for kind, stage, value in found:
        totals.setdefault(stage, {})[kind] = float(value)
    return {stage: (t.get("sum", 0.0), t.get("count", 0.0)) for stage, t in totals.items()}


async def overhead(http: Http, driver: Driver, metrics_url: str) -> dict[str, float]:
    """(b) Direct Kafka requests and gateway calls paced together; the gateway's added latency."""
    before = await stage_totals(http, metrics_url)
    direct_ids, via_gateway = await asyncio.gather(
        driver.paced("echo", PACED_RPS, PACED_SECONDS, max_tokens=MAX_TOKENS), paced(http, PACED_RPS, PACED_SECONDS)
    )
    done = await driver.wait(direct_ids, timeout=60)
    direct = [(driver.received[i] - driver.sent[i]) * 1000 for i in done if done[i]["status"] == "ok"]
    d50, d99 = percentiles(direct)
    g50, g99 = percentiles([took for took, _ in via_gateway])
    o50, o99 = percentiles([took - upstream for took, upstream in via_gateway])
    after = await stage_totals(http, metrics_url)
    stages = {
        f"stage_{stage}_mean_ms": round(
            1000 * (total - before.get(stage, (0, 0))[0]) / max(1.0, n - before.get(stage, (0, 0))[1]), 2
        )
        for stage, (total, n) in after.items()
    }
    return stages | {
        "direct_kafka_p50_ms": d50,
        "direct_kafka_p99_ms": d99,
        "gateway_p50_ms": g50,
        "gateway_p99_ms": g99,
        "gateway_overhead_p50_ms": o50,
        "gateway_overhead_p99_ms": o99,
        "gateway_vs_direct_p50_ms": round(g50 - d50, 2),
        "gateway_vs_direct_p99_ms": round(g99 - d99, 2),
        "paced_ok": len(via_gateway),
        "paced_direct_ok": len(direct),
    }


async def run(bootstrap: str) -> dict[str, Any]:
    """Set up, measure, tear down (the run's tenant and key too)."""
    bench = await prepare_database()
    try:
        return await measure(bootstrap, bench.secret)
    finally:
        await forget_tenant(bench)


async def measure(bootstrap: str, key: str) -> dict[str, Any]:
    """The router and gateway processes on private topics, and both measurements through them."""
    port, metrics_port = free_port(18180), free_port(19180)
    base = f"http://127.0.0.1:{port}"
    async with private_topics(bootstrap) as (requests_topic, results_topic):
        with triton_server("gateway-bench-0") as endpoint:
            await asyncio.to_thread(triton.load_model, endpoint, "tinylm_stream")  # streamed calls run on it
            env = router_env(bootstrap, requests_topic, endpoint, f"bench-gateway-router-{uuid.uuid4().hex[:6]}")
            env["LLMFLEET_ROUTER_REPLY_TOPIC_PREFIXES"] = json.dumps(["bench.router.results.", "inference.replies."])
            with router_process(env), gateway_process(gateway_env(bootstrap, requests_topic, port, metrics_port)):
                async with Driver(bootstrap, requests_topic, results_topic) as driver:
                    await driver.warm_up()
                    http = Http(base, key)
                    try:
                        await http.ready(base)
                        figures: dict[str, Any] = await closed_loop(http)
                        print(
                            f"(a) {RPS_REQUESTS} echo completions, {RPS_CONCURRENCY} callers: "
                            f"{figures['gateway_rps']} requests/s through one gateway",
                            flush=True,
                        )
                        figures |= await overhead(http, driver, f"http://127.0.0.1:{metrics_port}/metrics")
                        print(
                            f"(b) at {PACED_RPS}/s: direct Kafka p50/p99 {figures['direct_kafka_p50_ms']}/"
                            f"{figures['direct_kafka_p99_ms']} ms, through the gateway {figures['gateway_p50_ms']}/"
                            f"{figures['gateway_p99_ms']} ms; the gateway's own share per call "
                            f"{figures['gateway_overhead_p50_ms']}/{figures['gateway_overhead_p99_ms']} ms",
                            flush=True,
                        )
                        figures |= await time_to_first_token(base, key)
                        print(
                            f"(c) tinylm, {STREAM_TOKENS} tokens, streamed: first token p50/p99 "
                            f"{figures['ttft_p50_ms']}/{figures['ttft_p99_ms']} ms, total p50 "
                            f"{figures['stream_total_p50_ms']} ms (unstreamed {figures['unstreamed_total_p50_ms']} ms)",
                            flush=True,
                        )
                        figures |= await batch_figures(base, key)
                        print(
                            f"(d) a batch of {BATCH_LINES} echo completions: {figures['batch_lines_per_s']} lines/s; "
                            f"a 50,000-line file validated in {figures['batch_validate_50k_s']} s",
                            flush=True,
                        )
                    finally:
                        await http.session.close()
    return figures


def main() -> None:
    """Run the benchmark and print its figures, then one JSON line."""
    with kafka_and_postgres() as stack:
        figures = asyncio.run(run(stack["kafka"]["bootstrap"]))
    for key, value in figures.items():
        print(f"{key}: {value}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
