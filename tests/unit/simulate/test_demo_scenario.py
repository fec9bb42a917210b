"""The live demo's run in the simulator: its planned requests, fleet file, server cap and settings."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from llmfleet import platform
from llmfleet.demo import DemoOptions, platform_settings
from llmfleet.demo_fleet import DEMO_MODELS
from llmfleet.report.prediction import prediction_section
from llmfleet.simulate.demo_scenario import batch_s, demo_models, demo_traffic, environment, expected_batch, predict
from llmfleet.trace import PlannedRequest
from services.router.domain.batching import BatchLimits


def planned(rate_per_s: float, seconds: float, prompt: int = 1_000) -> list[PlannedRequest]:
    """Evenly spaced requests of both demo models, two thirds in us-east-1."""
    count = int(rate_per_s * seconds)
    return [
        PlannedRequest(i, list(DEMO_MODELS)[i % 2], "us-east-1" if i % 3 else "eu-west-1", i / rate_per_s,
                       i / rate_per_s, prompt, 200, 16)
        for i in range(count)
    ]  # fmt: skip


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return platform.fleet_with_models(DEMO_MODELS, tmp_path_factory.mktemp("fleet"))


def run(requests: list[PlannedRequest], fleet: Path, max_servers: int = 6, cpu_ms: float = 1.0) -> dict[str, Any]:
    options = DemoOptions(max_servers=max_servers)
    settings = platform_settings(options, fleet, "t")
    return predict(requests, fleet, settings, options.scaling_policy, options.routing, max_servers, 16, cpu_ms)


def test_a_light_run_starts_cold_serves_everything_and_keeps_the_cap(fleet: Path) -> None:
    result = run(planned(4, 40), fleet)
    assert result["requests_ok"] == result["requests_sent"] == 160
    assert 1 <= result["servers_started"] <= 6
    assert result["p95_ms"] > 1000  # the first requests waited for a server to start (SERVER_START_S)


def test_the_server_cap_holds_under_load(fleet: Path) -> None:
    result = run(planned(40, 40, prompt=3_000), fleet, max_servers=3)
    assert result["servers_started"] == 3 and result["allocation_failed"] >= 1


def test_a_slower_cpu_predicts_a_slower_run(fleet: Path) -> None:
    requests = planned(20, 40)
    assert run(requests, fleet, cpu_ms=8.0)["p95_ms"] > run(requests, fleet, cpu_ms=0.5)["p95_ms"]


def test_a_batch_lasts_the_modelled_time_or_the_cpu_when_longer() -> None:
    prompts = np.full(8, 1_000)
    modelled = batch_s("a100_80gb", prompts, 16, 0.0)
    assert modelled > 0.1
    assert batch_s("a100_80gb", prompts, 16, 100.0) == pytest.approx(100.0 * 8 * 16 / 1000)


def test_the_settings_are_the_services_only_while_it_runs() -> None:
    key = "LLMFLEET_SCALER_COOLDOWN_S"
    before = os.environ.get(key)
    with environment({key: "123"}):
        assert os.environ[key] == "123"
    assert os.environ.get(key) == before


def test_a_router_batch_holds_what_arrives_in_its_wait(fleet: Path) -> None:
    models = demo_models(fleet)
    traffic = demo_traffic(models, planned(40, 30), seed=1)  # 20/s per model, two thirds in us-east-1
    limits = BatchLimits(max_size=8, max_wait_s=0.15, token_budget=65_536)
    assert expected_batch(traffic, limits) == [3, 3]  # 1 + 13.3/s x 0.15 s
    assert expected_batch(traffic, BatchLimits(2, 10.0, 65_536)) == [2, 2]  # never above the batch size


def test_the_report_puts_the_prediction_beside_the_measured_figures() -> None:
    summary = {
        "latency": {"p95_ms": 2000.0}, "requests": {"ok": 10}, "allocations": {"servers_started": 3},
        "scaling": {"count": 4}, "utilization": {"fleet_mean": 0.3},
    }  # fmt: skip
    predicted = {"p95_ms": 2500.0, "requests_ok": 10, "servers_started": 3, "scaling_actions": 5, "utilization": 0.2}
    section = prediction_section({"prediction": predicted}, summary)
    assert section is not None and section["p95_predicted_over_measured"] == 1.25
    assert {r["figure"]: (r["predicted"], r["measured"]) for r in section["rows"]}["servers_started"] == (3, 3)
    assert prediction_section({}, summary) is None  # `llmfleet replay` has no prediction
