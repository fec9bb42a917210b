"""The six services as separate processes on the real stack: a request for a model that no server
holds is served after the platform provisions one (router -> scaler -> allocator -> Triton -> router),
and then through the gateway with OpenAI's SDK, with a key made by `llmfleet keys create`.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml
from typer.testing import CliRunner

from deploy.local import triton
from deploy.local.common import free_port, wait_until
from llmfleet.cli import app
from llmfleet.client import FleetClient
from services.allocator.settings import DEFAULT_FLEET
from shared.events import ALL_TOPICS, ResultStatus
from tests.integration.helpers import start_group_at_end

pytestmark = pytest.mark.timeout(300)

SERVICES = ("router", "allocator", "scaler", "cost", "monitor", "gateway")
REPO = Path(__file__).resolve().parents[2]


def fleet_with(model_id: str, folder: Path) -> Path:
    """The default fleet plus one model of this test, served by the repository's `echo`."""
    fleet = yaml.safe_load(DEFAULT_FLEET.read_text())
    fleet["models"][model_id] = {"min_memory_gb": 1, "preferred_gpu": "a100_80gb", "triton_model": "echo"}
    path = folder / "fleet.yaml"
    path.write_text(yaml.safe_dump(fleet))
    return path


def service_env(tag: str, kafka_bootstrap: str, database_url: Any, fleet: Path, model_id: str) -> dict[str, str]:
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
        # The gateway serves this test's model by configuration: replaying the shared broker's
        # allocations history would only slow its start.
        "LLMFLEET_GATEWAY_HTTP_PORT": str(free_port(18180)),
        "LLMFLEET_GATEWAY_INSTANCE_ID": f"e2e-{tag}",
        "LLMFLEET_GATEWAY_MODELS": json.dumps({model_id: {}}),
        "LLMFLEET_GATEWAY_FOLLOW_ALLOCATIONS": "false",
    }
    return env


@pytest.fixture
def platform(tmp_path: Path, kafka_bootstrap: str, database_url: Any) -> Iterator[tuple[str, str]]:
    """Start the six services; yield the model id to ask for and the gateway's base URL; stop them all."""
    tag = uuid.uuid4().hex[:6]
    model_id = f"e2e-echo-{tag}"
    env = service_env(tag, kafka_bootstrap, database_url, fleet_with(model_id, tmp_path), model_id)
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
        yield model_id, f"http://127.0.0.1:{env['LLMFLEET_GATEWAY_HTTP_PORT']}/v1"
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


async def test_a_cold_model_is_provisioned_and_every_request_gets_one_result(
    platform: tuple[str, str], kafka_bootstrap: str, database_url: Any
) -> None:
    model_id, gateway_url = platform
    async with FleetClient(kafka_bootstrap) as fleet:
        started = time.monotonic()
        first = await fleet.complete(model_id, "hello fleet", max_tokens=8, timeout=180)
        cold_start_s = time.monotonic() - started
        assert first.status == ResultStatus.OK, first.reason
        assert first.server_id and first.server_id.startswith("e2e")  # a server the allocator started
        ids = [await fleet.send(model_id, f"prompt {i}", max_tokens=8) for i in range(40)]
        results = await fleet.collect(ids, timeout=90)
    assert set(results) == set(ids)
    assert {r.status for r in results.values()} == {ResultStatus.OK}
    assert {r.server_id for r in results.values()} == {first.server_id}
    print(f"cold start served in {cold_start_s:.1f} s")
    # The CLI and the sync SDK run event loops or block: a thread of their own, not the test's loop.
    text = await asyncio.to_thread(_through_gateway, gateway_url, database_url("gateway"), model_id)
    assert text == "hihi"  # echo, on the server the platform provisioned


def _through_gateway(gateway_url: str, gateway_database: str, model_id: str) -> str | None:
    """One completion through the gateway with OpenAI's SDK and a fresh key; its text."""
    secret = _new_key(gateway_database)
    wait_until(lambda: _ready(gateway_url), 60, "the gateway")
    client = openai.OpenAI(base_url=gateway_url, api_key=secret, max_retries=0, timeout=30)
    return client.completions.create(model=model_id, prompt="hi", max_tokens=4).choices[0].text


def _new_key(url: str) -> str:
    """A tenant and a key made with the CLI, as an operator would; the key's secret."""
    tenant = f"e2e-{uuid.uuid4().hex[:8]}"
    for args in (["tenants", "create", tenant], ["keys", "create", tenant]):
        result = CliRunner().invoke(app, [*args, "--database-url", url], catch_exceptions=False)
        assert result.exit_code == 0, result.output
    return result.output.strip().splitlines()[-1]


def _ready(base_url: str) -> bool:
    """The gateway answers /ready with 200."""
    try:
        with urllib.request.urlopen(base_url.removesuffix("/v1") + "/ready", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False
