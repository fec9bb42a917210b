"""`make bench-router`: Kafka -> router -> Triton -> Kafka on the local stack.

Starts its own Triton server (reference speed), private request/result topics and one router
process (`python -m services.router`, static server, no allocator), then measures:
(a) sustained requests/s with the trivially cheap `echo` model (a burst larger than a second);
(b) the router's own overhead at a paced 1,000 requests/s: end-to-end time minus the Triton call
    minus the wait for the batch to form (driver-side, so it includes both Kafka hops), and the
    router-internal part alone (receipt to result handed to the producer);
(c) the batching gain on `tinylm`: tokens/s through the router versus one request per Triton call.
The last line is one JSON object. `--profile` runs the router under cProfile and prints its top.
"""

from __future__ import annotations

import asyncio
import json
import pstats
import statistics
import sys
import time
import uuid
from typing import Any

from benchmarks.local_stack import kafka_and_postgres
from benchmarks.router_driver import Driver, percentiles
from benchmarks.router_stack import ROOT, private_topics, router_env, router_process, triton_server
from services.router.adapters.triton_client import Prompt, TritonClient

RPS_REQUESTS = 20_000
PACED_RPS, PACED_SECONDS = 1_000, 5
LM_REQUESTS, LM_BASELINE, LM_TOKENS = 128, 24, 32


async def sustained_rps(driver: Driver) -> dict[str, float]:
    """(a) A burst of echo requests; requests/s from the first send to the last result."""
    started = time.perf_counter()
    ids = await driver.burst("echo", RPS_REQUESTS, max_tokens=8)
    done = await driver.wait(ids, timeout=120)
    times = sorted(driver.received[i] for i in ids if i in driver.received)
    lo, hi = times[len(times) // 10], times[len(times) * 9 // 10]
    return {
        "rps": round(len(done) / (times[-1] - started), 1),
        "rps_steady": round(len(times) * 0.8 / max(hi - lo, 1e-9), 1),
        "rps_ok": sum(1 for r in done.values() if r["status"] == "ok"),
    }


async def paced_overhead(driver: Driver) -> dict[str, float]:
    """(b) Overhead at a paced rate (ms): the router's own (poll to result handed to the producer),
    and end to end at the driver (adds both Kafka hops); both minus the Triton call and batch wait."""
    ids = await driver.paced("echo", PACED_RPS, PACED_SECONDS, max_tokens=8)
    done = await driver.wait(ids, timeout=60)
    e2e, inside = [], []
    for request_id, r in done.items():
        t = r["timings"]
        e2e_ms = (driver.received[request_id] - driver.sent[request_id]) * 1000
        e2e.append(e2e_ms - t["inference_ms"] - t["batched_ms"])
        inside.append(t["total_ms"] - t["queued_ms"] - t["batched_ms"] - t["inference_ms"])
    e50, e99 = percentiles(e2e)
    i50, i99 = percentiles(inside)
    return {
        "overhead_p50_ms": i50,
        "overhead_p99_ms": i99,
        "e2e_overhead_p50_ms": e50,
        "e2e_overhead_p99_ms": e99,
        "paced_ok": sum(1 for r in done.values() if r["status"] == "ok"),
        "paced_sent": len(ids),
    }


async def batching_gain(driver: Driver, endpoint: str, rounds: int = 3) -> dict[str, float]:
    """(c) tinylm tokens/s: router batching vs sequential single-row Triton calls (median of rounds)."""
    client = TritonClient(endpoint)
    await client.infer("tinylm", [Prompt("warm up", LM_TOKENS)])
    await driver.wait(await driver.burst("tinylm", 8, max_tokens=LM_TOKENS), timeout=30)  # warm the routed path
    single, routed = [], []
    for _ in range(rounds):
        started, tokens = time.perf_counter(), 0
        for i in range(LM_BASELINE):
            result = await client.infer("tinylm", [Prompt(f"benchmark prompt {i}: the fleet", LM_TOKENS)])
            tokens += result.completions[0].tokens_out
        single.append(tokens / (time.perf_counter() - started))
        started = time.perf_counter()
        done = await driver.wait(await driver.burst("tinylm", LM_REQUESTS, max_tokens=LM_TOKENS), timeout=60)
        elapsed = max(driver.received[i] for i in done) - started
        routed.append(sum(r["tokens_out"] for r in done.values() if r["status"] == "ok") / elapsed)
    await client.close()
    single_tps, routed_tps = statistics.median(single), statistics.median(routed)
    return {
        "tinylm_single_tokens_per_s": round(single_tps, 1),
        "tinylm_routed_tokens_per_s": round(routed_tps, 1),
        "batching_gain": round(routed_tps / single_tps, 2),
    }


async def run(bootstrap: str, profile_to: str | None) -> dict[str, Any]:
    """Set up, measure the three figures, tear down."""
    async with private_topics(bootstrap) as (requests_topic, results_topic):
        with triton_server() as endpoint:
            env = router_env(bootstrap, requests_topic, endpoint, f"bench-router-{uuid.uuid4().hex[:6]}")
            with router_process(env, profile_to):
                async with Driver(bootstrap, requests_topic, results_topic) as driver:
                    await driver.warm_up()
                    figures = await sustained_rps(driver)
                    print(f"(a) echo burst of {RPS_REQUESTS}: {figures['rps']} requests/s end to end", flush=True)
                    figures |= await paced_overhead(driver)
                    print(
                        f"(b) at {PACED_RPS}/s: router overhead p50/p99 {figures['overhead_p50_ms']}/"
                        f"{figures['overhead_p99_ms']} ms; with both Kafka hops {figures['e2e_overhead_p50_ms']}/"
                        f"{figures['e2e_overhead_p99_ms']} ms",
                        flush=True,
                    )
                    figures |= await batching_gain(driver, endpoint)
                    print(f"(c) tinylm batching gain {figures['batching_gain']}x", flush=True)
    return figures


def main() -> None:
    """Run the benchmark and print its figures, then one JSON line."""
    profile_to = str(ROOT / ".cache" / "bench-router.prof") if "--profile" in sys.argv else None
    with kafka_and_postgres() as stack:
        figures = asyncio.run(run(stack["kafka"]["bootstrap"], profile_to))
    if profile_to:
        pstats.Stats(profile_to).sort_stats("tottime").print_stats(25)
    for key, value in figures.items():
        print(f"{key}: {value}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
