"""The benchmark's own stack: private Kafka topics, a Triton server, a router process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from deploy.local import postgres, triton

ROOT = Path(__file__).resolve().parent.parent


@asynccontextmanager
async def private_topics(bootstrap: str, partitions: int = 8) -> Any:
    """A request and a reply topic for this run only (no other traffic; deleted afterwards)."""
    run = uuid.uuid4().hex[:8]
    names = (f"bench.router.requests.{run}", f"bench.router.results.{run}")
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, num_partitions=partitions, replication_factor=1) for n in names])
        yield names
    finally:
        await admin.delete_topics(list(names))
        await admin.close()


@contextmanager
def triton_server(name: str = "router-bench-0") -> Iterator[str]:
    """One Triton server at the reference speed with echo and tinylm; stopped afterwards."""
    info = triton.start_server(name, triton.PROFILES["h100_80gb"], models=["echo", "tinylm"], region="us-east-1")
    try:
        yield str(info["http_url"])
    finally:
        triton.stop_server(name)


def router_env(bootstrap: str, requests_topic: str, endpoint: str, group: str) -> dict[str, str]:
    """Environment of the router process: static server, private topic, no cold starts."""
    server = {
        "server_id": f"{group}-0",  # unique per run (the group is); known to this router process only
        "endpoint": endpoint,
        "region": "us-east-1",
        "gpu_type": "h100_80gb",
        "cost_per_hour": 2.0,
        "capacity": 8,
        "models": {"echo": "echo", "tinylm": "tinylm"},
    }
    values = {
        "KAFKA_BOOTSTRAP": bootstrap,
        "DATABASE_URL": postgres.database_url("router", postgres.status()),
        "CONSUMER_GROUP": group,
        "INSTANCE_ID": group,
        "REQUESTS_TOPIC": requests_topic,
        "STATIC_SERVERS": json.dumps([server]),
        "BATCH_STRATEGIES": json.dumps(
            {"echo": os.environ.get("BENCH_ROUTER_ECHO_STRATEGY", "latency_optimized"), "tinylm": "cost_optimized"}
        ),
        "REPLY_TOPIC_PREFIXES": json.dumps(["bench.router.results."]),
        "COLD_START_MODELS": "[]",
        "FOLLOW_ALLOCATIONS": "false",  # static server only: no allocator in the benchmark
        "TRACE_ROOT_RATIO": os.environ.get("BENCH_ROUTER_TRACE_RATIO", "1.0"),
    }
    return {**os.environ, **{f"LLMFLEET_ROUTER_{k}": v for k, v in values.items()}}


@contextmanager
def router_process(env: dict[str, str], profile_to: str | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """`python -m services.router` (optionally under cProfile); SIGTERM (graceful) afterwards."""
    profiling = ["-m", "cProfile", "-o", profile_to] if profile_to else []
    log = open(ROOT / ".cache" / "bench-router.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, *profiling, "-m", "services.router"], env=env, cwd=ROOT, stdout=log, stderr=log
    )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
        time.sleep(0.1)
