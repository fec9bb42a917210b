"""The Batch API's figures for `make bench-gateway`: lines per second through a batch, and a 50,000-line upload.

`batch_lines_per_s`: a batch of BENCH_BATCH_LINES echo completions (max_tokens 8) from its first
line sent (`in_progress`) to `completed`, through the gateway's batch runner (window, ledger
admission and settlement, Kafka, router, Triton, results recorded one row per line).
`batch_validate_50k_s`: a 50,000-line file (the largest batch), uploaded, checked line by line and
stored, from `POST /v1/batches` to `in_progress`; it is cancelled then.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from typing import Any

import aiohttp

BATCH_LINES = int(os.environ.get("BENCH_BATCH_LINES", "10000"))
LARGEST = 50_000
WAIT_S = 900.0  # a stalled batch ends the run with an error, not a hang


def batch_env() -> dict[str, str]:
    """The gateway's batch settings for a run: a pool, reply topic and group of its own."""
    run = uuid.uuid4().hex[:8]
    return {
        "BATCH_POOL": f"bench-{run}",
        "BATCH_CONSUMER_GROUP": f"bench-batch-{run}",
        "BATCH_REPLY_TOPIC": f"inference.replies.bench-batch-{run}",
    }


def jsonl(n: int) -> bytes:
    """n echo completions."""
    rows = (
        json.dumps({"custom_id": f"b{i}", "method": "POST", "url": "/v1/completions",
                    "body": {"model": "echo", "prompt": f"batch line {i}", "max_tokens": 8}})
        for i in range(n)
    )  # fmt: skip
    return ("\n".join(rows) + "\n").encode()


async def _submit(session: aiohttp.ClientSession, base: str, data: bytes) -> str:
    form = aiohttp.FormData()
    form.add_field("purpose", "batch")
    form.add_field("file", data, filename="bench.jsonl", content_type="application/jsonl")
    async with session.post(f"{base}/v1/files", data=form) as response:
        uploaded = await response.json()
    body = {"input_file_id": uploaded["id"], "endpoint": "/v1/completions", "completion_window": "24h"}
    async with session.post(f"{base}/v1/batches", json=body) as response:
        return str((await response.json())["id"])


async def _until(session: aiohttp.ClientSession, base: str, batch_id: str, statuses: tuple[str, ...]) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        async with session.get(f"{base}/v1/batches/{batch_id}") as response:
            batch: dict[str, Any] = await response.json()
        if batch["status"] in statuses:
            return batch
        await asyncio.sleep(0.1)
    raise TimeoutError(f"batch {batch_id} not {' or '.join(statuses)} after {WAIT_S} s")


async def batch_figures(base: str, key: str) -> dict[str, Any]:
    """Both batch figures through the running gateway at `base`."""
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}"}) as session:
        batch_id = await _submit(session, base, jsonl(BATCH_LINES))
        await _until(session, base, batch_id, ("in_progress", "finalizing", "completed", "failed"))
        started = time.perf_counter()
        done = await _until(session, base, batch_id, ("completed", "failed", "expired", "cancelled"))
        elapsed = time.perf_counter() - started
        counts = done["request_counts"]
        created = time.perf_counter()
        largest = await _submit(session, base, jsonl(LARGEST))
        running = await _until(session, base, largest, ("in_progress", "failed"))
        validated = time.perf_counter() - created
        async with session.post(f"{base}/v1/batches/{largest}/cancel") as response:
            response.raise_for_status()
    return {
        "batch_lines": BATCH_LINES,
        "batch_lines_ok": counts["completed"],
        "batch_lines_per_s": round(counts["completed"] / elapsed, 1),
        "batch_validate_50k_s": round(validated, 2),
        "batch_50k_total": running["request_counts"]["total"],
    }
