"""What a scrape round feeds the rules (per server) and the signals (per model and region)."""

from __future__ import annotations

import pytest

from services.monitor.domain.fleet import Target, next_failures
from services.monitor.domain.rounds import TargetRound, alert_observations, cost_per_hour_by_region, signal_inputs
from services.monitor.domain.rules import Metric
from services.monitor.domain.windows import ServerWindow


def window(model_id: str | None, utilization: float, queue: float) -> ServerWindow:
    return ServerWindow(model_id, 60.0, utilization, True, queue, 10, 0, 1.0, 0.0, 5.0)


def target(server_id: str, region: str = "eu", models: dict[str, str] | None = None) -> Target:
    return Target(server_id, f"http://{server_id}/metrics", region, "a100_80gb", cost_per_hour=2.0, models=models or {})


def by_metric(observations) -> dict[tuple[Metric, str], float | None]:
    return {(o.metric, o.scope.get("server_id") or o.scope.get("model_id")): o.value for o in observations}


def test_a_down_server_reports_only_its_failures():
    rounds = [TargetRound(target("a"), failures=2, windows=(), error="refused")]
    assert by_metric(alert_observations(rounds)) == {(Metric.SCRAPE_FAILURES, "a"): 2.0}


def test_an_answering_server_reports_utilisation_and_queue():
    rounds = [TargetRound(target("a"), 0, (window(None, 0.5, 7), window("tinylm", 0.5, 7)))]
    assert by_metric(alert_observations(rounds)) == {
        (Metric.SCRAPE_FAILURES, "a"): 0.0,
        (Metric.GPU_UTILIZATION, "a"): 0.5,
        (Metric.QUEUE_DEPTH, "a"): 7,
    }


def test_signal_inputs_are_per_platform_model_and_region():
    rounds = [
        TargetRound(target("a", models={"tinylm": "llama-7b"}), 0, (window(None, 0.9, 10), window("tinylm", 0.9, 10))),
        TargetRound(target("b", models={"tinylm": "llama-7b"}), 0, (window(None, 0.5, 60), window("tinylm", 0.5, 60))),
        TargetRound(target("c", region="us"), 0, (window(None, 0.1, 0), window("echo", 0.1, 0))),
        TargetRound(target("d", models={"tinylm": "llama-7b"}), 3, ()),  # down: no say
    ]
    inputs = {(o.metric, o.scope["model_id"], o.scope["region"]): o.value for o in signal_inputs(rounds)}
    assert inputs[(Metric.GPU_UTILIZATION, "llama-7b", "eu")] == pytest.approx(0.7)
    assert inputs[(Metric.QUEUE_DEPTH, "llama-7b", "eu")] == 60  # the worst server
    assert inputs[(Metric.GPU_UTILIZATION, "echo", "us")] == 0.1  # no ModelLoaded: Triton's name
    assert len(inputs) == 4


def test_signal_inputs_judge_each_gpu_type_of_a_model_apart():
    h100 = Target("h", "http://h/metrics", "eu", "h100_80gb", models={"tinylm": "llama-7b"})
    rounds = [
        TargetRound(target("a", models={"tinylm": "llama-7b"}), 0, (window(None, 0.9, 0), window("tinylm", 0.9, 0))),
        TargetRound(h100, 0, (window(None, 0.1, 70), window("tinylm", 0.1, 70))),
    ]
    inputs = {
        (o.metric, o.scope["model_id"], o.scope["region"], o.scope["gpu_type"]): o.value for o in signal_inputs(rounds)
    }
    # One saturated A100 and one idle H100 are two scopes, not one "half busy" mean of 0.5.
    assert inputs[(Metric.GPU_UTILIZATION, "llama-7b", "eu", "a100_80gb")] == 0.9
    assert inputs[(Metric.GPU_UTILIZATION, "llama-7b", "eu", "h100_80gb")] == 0.1
    assert inputs[(Metric.QUEUE_DEPTH, "llama-7b", "eu", "h100_80gb")] == 70
    assert inputs[(Metric.QUEUE_DEPTH, "llama-7b", "eu", "a100_80gb")] == 0


def test_cost_per_hour_by_region_prefers_the_priced_figure():
    targets = [target("a"), target("b"), target("c", region="us")]
    assert cost_per_hour_by_region(targets, {"a": 3.0}) == {"eu": 5.0, "us": 2.0}


def test_failures_in_a_row():
    assert next_failures(2, scraped_ok=False) == 3
    assert next_failures(2, scraped_ok=True) == 0
