"""`make bench-triton`: what batching buys on the served model, on a real Triton server.

Measures, on one server with no emulated model (no modelled time, so the figures are this CPU's own):
- tinylm latency and tokens/s for one request of a batch dimension 1, 8, 32 and 64;
- the same 8 requests sent concurrently as single rows (Triton's dynamic batcher groups them);
- echo (no compute) request rate under concurrency: the Triton + HTTP overhead floor.
The last line is one JSON object.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time

import numpy as np
import tritonclient.http.aio as triton_http
from tritonclient.http import InferInput

from deploy.local import triton

MAX_TOKENS = 32
REPEATS = 7


def _inputs(rows: int, max_tokens: int) -> list[InferInput]:
    prompts = np.array([[f"benchmark prompt {i}: the fleet".encode()] for i in range(rows)], dtype=np.object_)
    counts = np.full((rows, 1), max_tokens, dtype=np.int32)
    tensors = []
    for name, data, datatype in (("PROMPT", prompts, "BYTES"), ("MAX_TOKENS", counts, "INT32")):
        tensor = InferInput(name, list(data.shape), datatype)
        tensor.set_data_from_numpy(data)
        tensors.append(tensor)
    return tensors


async def _median_ms(client: triton_http.InferenceServerClient, model: str, rows: int) -> float:
    await client.infer(model, _inputs(rows, MAX_TOKENS))  # warm-up
    timings = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        await client.infer(model, _inputs(rows, MAX_TOKENS))
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


async def _concurrent_ms(client: triton_http.InferenceServerClient, rows: int) -> float:
    timings = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        await asyncio.gather(*(client.infer("tinylm", _inputs(1, MAX_TOKENS)) for _ in range(rows)))
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


async def _echo_rps(client: triton_http.InferenceServerClient, total: int = 2000, concurrency: int = 64) -> float:
    semaphore = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with semaphore:
            await client.infer("echo", _inputs(1, 8))

    await one()
    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(total)))
    return total / (time.perf_counter() - started)


async def measure(url: str) -> dict[str, float]:
    """All figures against the Triton server at `url`."""
    client = triton_http.InferenceServerClient(url, conn_limit=128)
    try:
        latency = {rows: await _median_ms(client, "tinylm", rows) for rows in (1, 8, 32, 64)}
        for rows, ms in latency.items():
            tokens_per_s = rows * MAX_TOKENS / ms * 1000
            print(f"tinylm batch {rows:>2} x {MAX_TOKENS} tokens: {ms:7.1f} ms  {tokens_per_s:8.0f} tok/s")
        dynamic_8 = await _concurrent_ms(client, 8)
        print(f"tinylm 8 concurrent single-row requests (dynamic batching): {dynamic_8:.1f} ms")
        echo_rps = await _echo_rps(client)
        print(f"echo: {echo_rps:.0f} requests/s at concurrency 64")
    finally:
        await client.close()
    return {
        "tinylm_batch1_ms": round(latency[1], 1),
        "tinylm_batch8_ms": round(latency[8], 1),
        "tinylm_batch32_ms": round(latency[32], 1),
        "tinylm_batch64_ms": round(latency[64], 1),
        "batch8_cost_vs_single": round(latency[8] / latency[1], 2),
        "batching_gain_tokens_per_s_64": round(64 * latency[1] / latency[64], 2),
        "dynamic_batch8_ms": round(dynamic_8, 1),
        "echo_rps": round(echo_rps),
    }


def main() -> None:
    """Start a server timed by tinylm's own compute (no emulated model), measure, stop it."""
    name = "bench-triton"
    info = triton.start_server(name, triton.PROFILES["h100_80gb"], ("tinylm", "echo"))
    try:
        figures = asyncio.run(measure(info["http_url"]))
    finally:
        triton.stop_server(name)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
