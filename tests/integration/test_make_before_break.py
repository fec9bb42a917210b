"""Make before break, under load, with router, allocator and scaler as processes on the real stack:

- a spot reclaim loses no request: `llmfleet chaos spot-reclaim` gives the notice while requests
  stream in; the server drains (the router sends it no new batches), the allocator starts a
  replacement and stops the reclaimed server once the replacement serves, before the notice runs out;
- a re-plan moves an instance to a cheaper GPU without a failed request: the model is placed on
  its preferred H100, and the fleet MILP moves it to a cheaper type while requests stream in.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from deploy.local import triton
from llmfleet.cli import app
from llmfleet.client import FleetClient
from services.allocator.settings import DEFAULT_FLEET
from shared.events import ALL_TOPICS, ALLOCATIONS, ResultStatus
from tests.integration.helpers import collect, start_group_at_end
from tests.integration.test_platform_end_to_end import REPO, _wait, service_env

pytestmark = pytest.mark.timeout(300)

SERVICES = ("router", "allocator", "scaler")
NOTICE_S = 90


def spot_fleet_with(model_id: str, folder: Path) -> Path:
    """The default fleet, its A100 pools bought as spot, plus one model of this test served by `echo`."""
    fleet = yaml.safe_load(DEFAULT_FLEET.read_text())
    for pools in fleet["pools"].values():
        if "a100_80gb" in pools:
            pools["a100_80gb"] = [*pools["a100_80gb"][:3], "spot"]
    fleet["models"][model_id] = {"min_memory_gb": 1, "preferred_gpu": "a100_80gb", "triton_model": "echo"}
    path = folder / "fleet.yaml"
    path.write_text(yaml.safe_dump(fleet))
    return path


def cheapest_last_fleet_with(model_id: str, folder: Path) -> Path:
    """The default fleet plus one model of this test, served by `echo`, preferring the dearest GPU (H100)."""
    fleet = yaml.safe_load(DEFAULT_FLEET.read_text())
    fleet["models"][model_id] = {
        "min_memory_gb": 1,
        "preferred_gpu": "h100_80gb",
        "instances_per_gpu": 4,
        "triton_model": "echo",
    }
    path = folder / "fleet.yaml"
    path.write_text(yaml.safe_dump(fleet))
    return path


@pytest.fixture
def spot_platform(tmp_path: Path, kafka_bootstrap: str, database_url: Any) -> Iterator[tuple[str, str]]:
    """Router, allocator and scaler on a fleet of spot A100s; yield the model id and the server prefix."""
    yield from processes(tmp_path, kafka_bootstrap, database_url, spot_fleet_with, {})


@pytest.fixture
def replanning_platform(tmp_path: Path, kafka_bootstrap: str, database_url: Any) -> Iterator[tuple[str, str]]:
    """Router, allocator (re-planning every 5 s) and scaler; the model prefers the H100, the dearest type."""
    yield from processes(
        tmp_path, kafka_bootstrap, database_url, cheapest_last_fleet_with, {"LLMFLEET_ALLOCATOR_REPLAN_INTERVAL_S": "5"}
    )


def processes(
    tmp_path: Path,
    kafka_bootstrap: str,
    database_url: Any,
    fleet_with: Any,
    extra_env: dict[str, str],
) -> Iterator[tuple[str, str]]:
    """Start the services on the fleet `fleet_with` writes; yield the model id and server prefix; stop them."""
    tag = uuid.uuid4().hex[:6]
    model_id, prefix = f"mbb-echo-{tag}", f"mbb{tag}"
    env = service_env(tag, kafka_bootstrap, database_url, fleet_with(model_id, tmp_path), model_id)
    env |= {"LLMFLEET_ALLOCATOR_SERVER_PREFIX": prefix, "LLMFLEET_ALLOCATOR_RECONCILE_INTERVAL_S": "2", **extra_env}
    for group in [f"e2e-{tag}-{service}" for service in SERVICES] + [f"e2e-{tag}-router-registry-0"]:
        asyncio.run(start_group_at_end(kafka_bootstrap, group, *(t.name for t in ALL_TOPICS)))
    for service in SERVICES:
        subprocess.run([sys.executable, "-m", f"services.{service}", "migrate"], cwd=REPO, env=env, check=True)
    processes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for service in SERVICES:
            log = (tmp_path / f"{service}.log").open("wb")
            processes[service] = subprocess.Popen(
                [sys.executable, "-m", f"services.{service}"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        yield model_id, prefix
    finally:
        for process in processes.values():
            process.terminate()
        codes = {name: _wait(process) for name, process in processes.items()}
        for name in triton.status():
            if name.startswith(prefix):
                triton.stop_server(name)
        for service in SERVICES:
            print(f"--- {service} log (tail)\n" + (tmp_path / f"{service}.log").read_text()[-2000:])
    assert codes == dict.fromkeys(SERVICES, 0), f"every service stops cleanly on SIGTERM: {codes}"


async def test_a_spot_reclaim_under_load_loses_no_request(spot_platform, kafka_bootstrap):
    model_id, prefix = spot_platform
    async with FleetClient(kafka_bootstrap) as fleet:
        first = await fleet.complete(model_id, "warm up", max_tokens=4, timeout=180)
        assert first.status == ResultStatus.OK, first.reason
        doomed = str(first.server_id)
        assert doomed.startswith(prefix)

        ids: list[str] = []
        noticed_at = 0.0
        for i in range(150):  # 15 s of traffic at 10 requests a second, the notice 3 s in
            ids.append(await fleet.send(model_id, f"prompt {i}", max_tokens=4))
            if i == 30:
                noticed_at = time.monotonic()
                result = await asyncio.to_thread(
                    CliRunner().invoke,
                    app,
                    ["chaos", "spot-reclaim", doomed, "--notice-s", str(NOTICE_S), "--bootstrap", kafka_bootstrap],
                )
                assert result.exit_code == 0, result.output
            await asyncio.sleep(0.1)
        results = await fleet.collect(ids, timeout=180)

    assert set(results) == set(ids)
    failed = {r.request_id: (r.status, r.reason) for r in results.values() if r.status != ResultStatus.OK}
    assert failed == {}, failed
    servers = {r.server_id for r in results.values()}
    assert len(servers - {doomed}) >= 1, "later requests are served by the replacement"

    def released(records: list[Any]) -> bool:
        return any(json.loads(r.value).get("type") == "server_released" and doomed in r.value.decode() for r in records)

    events = [json.loads(r.value) for r in await collect(kafka_bootstrap, ALLOCATIONS.name, released, timeout=120)]
    released_at = time.monotonic()
    assert any(e["type"] == "server_released" and e["server_id"] == doomed for e in events)
    (repair,) = [e for e in events if e["type"] == "fleet_repaired" and e.get("server_id") == doomed]
    assert repair["repair"] == "spot_reclaimed" and "replaced before" in repair["reason"]
    assert released_at - noticed_at < NOTICE_S, "make before break: stopped once replaced, before the reclaim"
    assert doomed not in triton.status()


async def test_a_re_plan_moves_an_instance_to_a_cheaper_gpu_without_a_failed_request(
    replanning_platform, kafka_bootstrap
):
    model_id, _prefix = replanning_platform
    async with FleetClient(kafka_bootstrap) as fleet:
        first = await fleet.complete(model_id, "warm up", max_tokens=4, timeout=180)
        assert first.status == ResultStatus.OK, first.reason
        dear = str(first.server_id)
        ids = []
        for i in range(200):  # 20 s of traffic at 10 requests a second; the re-plan runs every 5 s
            ids.append(await fleet.send(model_id, f"prompt {i}", max_tokens=4))
            await asyncio.sleep(0.1)
        results = await fleet.collect(ids, timeout=180)
    failed = {r.request_id: (r.status, r.reason) for r in results.values() if r.status != ResultStatus.OK}
    assert set(results) == set(ids) and failed == {}, failed

    def moved_and_released(records: list[Any]) -> bool:
        events = [json.loads(r.value) for r in records]
        return any(e["type"] == "instances_moved" and e["from_server"] == dear for e in events) and any(
            e["type"] == "server_released" and e["server_id"] == dear for e in events
        )

    events = [json.loads(r.value) for r in await collect(kafka_bootstrap, ALLOCATIONS.name, moved_and_released, 120)]
    (moved,) = [e for e in events if e["type"] == "instances_moved" and e["from_server"] == dear]
    assert moved["from_gpu_type"] == "h100_80gb" and moved["to_gpu_type"] != "h100_80gb"
    assert moved["saving_per_hour"] > 0
    assert {r.server_id for r in results.values()} <= {dear, moved["to_server"]}
    assert dear not in triton.status()
