"""(c) of `make bench-gateway`: time to first token of streamed tinylm completions through the gateway.

Each streamed call's `ttft` is the time from sending the request to the first chunk holding text
(HTTP, gateway, Kafka, router, Triton's first decode step, and back); its total is the time to
`data: [DONE]`. The same calls unstreamed give the total a client waits without streaming.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp

from benchmarks.router_driver import percentiles

STREAM_CALLS, STREAM_CONCURRENCY, STREAM_TOKENS = 200, 4, 256


async def one(session: aiohttp.ClientSession, url: str, key: str, i: int, stream: bool) -> tuple[float, float] | None:
    """One tinylm completion: (seconds to the first text chunk, seconds to the end), or None if it failed."""
    body = {"model": "tinylm", "prompt": f"story {i}: once upon a time", "max_tokens": STREAM_TOKENS}
    body |= {"temperature": 0, "stream": stream}
    started, first = time.perf_counter(), None
    async with session.post(url, json=body, headers={"Authorization": f"Bearer {key}"}) as response:
        if response.status != 200:
            return None
        if not stream:
            await response.read()
            took = time.perf_counter() - started
            return took, took
        async for line in response.content:
            if first is None and line.startswith(b"data: {") and b'"text":"' in line and b'"text":""' not in line:
                first = time.perf_counter()
            if line.startswith(b"data: [DONE]"):
                break
    return None if first is None else (first - started, time.perf_counter() - started)


async def calls(session: aiohttp.ClientSession, url: str, key: str, stream: bool) -> list[tuple[float, float]]:
    """STREAM_CALLS calls from STREAM_CONCURRENCY callers; the ones that succeeded."""
    todo, done = iter(range(STREAM_CALLS)), []

    async def caller() -> None:
        for i in todo:
            if (timed := await one(session, url, key, i, stream)) is not None:
                done.append(timed)

    await asyncio.gather(*(caller() for _ in range(STREAM_CONCURRENCY)))
    return done


async def time_to_first_token(base: str, key: str) -> dict[str, Any]:
    """Streamed and unstreamed tinylm completions: first-token and total percentiles in ms."""
    url = f"{base}/v1/completions"
    async with aiohttp.ClientSession() as session:
        await one(session, url, key, -1, True)  # warm-up: the first call loads nothing later calls pay for
        streamed = await calls(session, url, key, stream=True)
        unstreamed = await calls(session, url, key, stream=False)
    if not streamed or not unstreamed:
        raise RuntimeError("no tinylm completion succeeded; see .cache/bench-gateway.log")
    t50, t99 = percentiles([first * 1000 for first, _ in streamed])
    s50, _ = percentiles([total * 1000 for _, total in streamed])
    u50, _ = percentiles([total * 1000 for _, total in unstreamed])
    return {
        "ttft_p50_ms": t50,
        "ttft_p99_ms": t99,
        "stream_total_p50_ms": s50,
        "unstreamed_total_p50_ms": u50,
        "stream_ok": len(streamed),
        "unstreamed_ok": len(unstreamed),
    }
