"""The five services as separate processes on the real stack: a request for a model that no server
holds is served after the platform provisions one (router -> scaler -> allocator -> Triton -> router).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.local import triton
from llmfleet.client import FleetClient
from services.allocator.settings import DEFAULT_FLEET
from shared.events import ALL_TOPICS, ResultStatus
from tests.integration.helpers import start_group_at_end

pytestmark = pytest.mark.timeout(300)

SERVICES = ("router", "allocator", "scaler", "cost", "monitor")
REPO = Path(__file__).resolve().parents[2]


def fleet_with(model_id: str, folder: Path) -> Path:
    """The default fleet plus one model of this test, served by the repository's `echo`."""
    fleet = yaml.safe_load(DEFAULT_FLEET.read_text())
    fleet["models"][model_id] = {"min_memory_gb": 1, "preferred_gpu": "a100_80gb", "triton_model": "echo"}
    path = folder / "fleet.yaml"
    path.write_text(yaml.safe_dump(fleet))
    return path


def service_env(tag: str, kafka_bootstrap: str, database_url: Any, fleet: Path) -> dict[str, str]:
    env = dict(os.environ)
    for service in SERVICES:
        prefix = f"LLMFLEET_{service.upper()}_"
        env[prefix + "DATABASE_URL"] = database_url(service)
        env[prefix + "KAFKA_BOOTSTRAP"] = kafka_bootstrap
        env[prefix + "CONSUMER_GROUP"] = f"e2e-{tag}-{service}"
    env |= {
        "LLMFLEET_SCALER_BUCKET_S": "10",
        "LLMFLEET_SCALER_EVALUATION_INTERVAL_S": "5",
        "LLMFLEET_ALLOCATOR_FLEET_CONFIG": str(fleet),
        "LLMFLEET_ALLOCATOR_SERVER_PREFIX": f"e2e{tag}",
    }
    return env


@pytest.fixture
def platform(tmp_path: Path, kafka_bootstrap: str, database_url: Any) -> Iterator[str]:
    """Start the five services; yield the model id to ask for; stop them and their Triton servers."""
    import asyncio

    tag = uuid.uuid4().hex[:6]
    model_id = f"e2e-echo-{tag}"
    env = service_env(tag, kafka_bootstrap, database_url, fleet_with(model_id, tmp_path))
    # Only this test's traffic, not the history on the shared broker (the router's registry reads
    # allocations in a group of its own per replica).
    for group in [f"e2e-{tag}-{service}" for service in SERVICES] + [f"e2e-{tag}-router-registry-0"]:
        asyncio.run(start_group_at_end(kafka_bootstrap, group, *(t.name for t in ALL_TOPICS)))
    processes: dict[str, subprocess.Popen[bytes]] = {}
    for service in SERVICES:  # migrations are a job of their own (services do not migrate at start)
        subprocess.run([sys.executable, "-m", f"services.{service}", "migrate"], cwd=REPO, env=env, check=True)
    try:
        for service in SERVICES:
            log = (tmp_path / f"{service}.log").open("wb")
            processes[service] = subprocess.Popen(
                [sys.executable, "-m", f"services.{service}"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        yield model_id
    finally:
        for process in processes.values():
            process.terminate()
        codes = {name: _wait(process) for name, process in processes.items()}
        for name in triton.status():
            if name.startswith(f"e2e{tag}"):
                triton.stop_server(name)
        for service in SERVICES:
            print(f"--- {service} log (tail)\n" + (tmp_path / f"{service}.log").read_text()[-2000:])
    assert codes == dict.fromkeys(SERVICES, 0), f"every service stops cleanly on SIGTERM: {codes}"


def _wait(process: subprocess.Popen[bytes]) -> int | None:
    try:
        return process.wait(timeout=45)
    except subprocess.TimeoutExpired:
        process.kill()
        return None


async def test_a_cold_model_is_provisioned_and_every_request_gets_one_result(platform: str, kafka_bootstrap: str):
    async with FleetClient(kafka_bootstrap) as fleet:
        started = time.monotonic()
        first = await fleet.complete(platform, "hello fleet", max_tokens=8, timeout=180)
        cold_start_s = time.monotonic() - started
        assert first.status == ResultStatus.OK, first.reason
        assert first.server_id and first.server_id.startswith("e2e")  # a server the allocator started
        ids = [await fleet.send(platform, f"prompt {i}", max_tokens=8) for i in range(40)]
        results = await fleet.collect(ids, timeout=90)
    assert set(results) == set(ids)
    assert {r.status for r in results.values()} == {ResultStatus.OK}
    assert {r.server_id for r in results.values()} == {first.server_id}
    print(f"cold start served in {cold_start_s:.1f} s")
