"""Capacity per instance corrected by what instances were measured to serve: samples, smoothing, bounds."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from services.scaler.domain.capacity import ModelSpec, instance_capacity
from services.scaler.domain.measured import (
    BOUND,
    FULL_WEIGHT,
    MAX_AGE,
    Measured,
    capacity_sample,
    corrected,
    update,
)
from services.scaler.settings import ScalerSettings
from services.scaler.use_cases import recording
from services.scaler.use_cases.evaluation import capacity_per_instance
from shared.events import ServerMetricsReported
from tests.unit.scaler.fakes import FakeScalerStore
from tests.unit.scaler.test_use_cases import CONSUMER, NOW, busy_model, evaluate


def test_a_sample_is_throughput_at_full_busy_time():
    assert capacity_sample(throughput_rps=0.5, utilization=0.8, requests_ok=30) == pytest.approx(2250.0)
    assert capacity_sample(1.0, 1.0, 60) == pytest.approx(3600.0)


@pytest.mark.parametrize(
    ("throughput", "utilization", "requests"),
    [(0.5, 0.3, 30), (0.5, 0.8, 5), (0.0, 0.9, 30), (float("nan"), 0.9, 30)],  # idle, thin, none, garbage
)
def test_thin_or_idle_windows_are_no_sample(throughput, utilization, requests):
    assert capacity_sample(throughput, utilization, requests) is None


def test_the_first_sample_starts_the_estimate_and_later_ones_move_it_by_alpha():
    first = update(None, 2000.0, NOW)
    assert first == Measured(2000.0, 1, NOW)
    second = update(first, 3000.0, NOW + timedelta(seconds=15))
    assert second.requests_per_hour == pytest.approx(2200.0) and second.samples == 2


def test_one_wild_window_moves_the_estimate_at_most_twenty_percent():
    steady = Measured(2000.0, 50, NOW)
    assert update(steady, 1_000_000.0, NOW).requests_per_hour == pytest.approx(2400.0)  # clipped to 2x, then 0.2
    assert update(steady, 1.0, NOW).requests_per_hour == pytest.approx(1800.0)  # clipped to /2


def test_the_estimate_converges_on_a_steady_measurement():
    estimate = None
    for i in range(60):
        estimate = update(estimate, 3000.0 if i else 500.0, NOW + timedelta(seconds=15 * i))  # a bad first window
    assert estimate is not None and estimate.requests_per_hour == pytest.approx(3000.0, rel=0.01)


def test_without_measurements_the_modelled_figure_stands():
    assert corrected(6000.0, None, NOW) == 6000.0


def test_the_measured_figure_weighs_by_its_samples():
    few = corrected(6000.0, Measured(3000.0, FULL_WEIGHT // 2, NOW), NOW)
    assert few == pytest.approx((6000.0 * 3000.0) ** 0.5)  # half weight: the geometric mean
    assert corrected(6000.0, Measured(4000.0, FULL_WEIGHT, NOW), NOW) == pytest.approx(4000.0)


def test_the_correction_stays_within_bound_of_the_model():
    assert corrected(6000.0, Measured(100.0, 100, NOW), NOW) == pytest.approx(6000.0 / BOUND)
    assert corrected(6000.0, Measured(1e9, 100, NOW), NOW) == pytest.approx(6000.0 * BOUND)


def test_a_stale_estimate_is_dropped():
    old = Measured(3000.0, 100, NOW - MAX_AGE - timedelta(seconds=1))
    assert corrected(6000.0, old, NOW) == 6000.0


def report(model_id: str | None, throughput: float, utilization: float, requests: int, gpu: str = "v100_32gb"):
    return ServerMetricsReported(
        source="monitor", server_id="s1", model_id=model_id, region="us-east-1", gpu_type=gpu, window_s=60,
        utilization=utilization, utilization_derived=True, requests_ok=requests, throughput_rps=throughput,
    )  # fmt: skip


async def test_server_reports_update_the_models_estimate_per_gpu_type():
    store = FakeScalerStore()
    assert await recording.record_server_metrics(store, CONSUMER, report("m", 0.5, 0.8, 30))
    assert await recording.record_server_metrics(store, CONSUMER, report("m", 1.0, 1.0, 60, gpu="h100_80gb"))
    assert await recording.record_server_metrics(store, CONSUMER, report("m", 5.0, 0.1, 300))  # idle: no sample
    assert await recording.record_server_metrics(store, CONSUMER, report(None, 5.0, 0.9, 300))  # server-wide: none
    capacity = store.state.capacity
    assert set(capacity) == {("m", "v100_32gb"), ("m", "h100_80gb")}
    assert capacity[("m", "v100_32gb")].requests_per_hour == pytest.approx(2250.0)
    assert capacity[("m", "v100_32gb")].samples == 1
    again = report("m", 0.5, 0.8, 30)
    assert await recording.record_server_metrics(store, CONSUMER, again)
    assert not await recording.record_server_metrics(store, CONSUMER, again)  # a redelivery adds no sample
    assert store.state.capacity[("m", "v100_32gb")].samples == 2


def fleet(tmp_path: Path) -> Path:
    path = tmp_path / "fleet.yaml"
    path.write_text(
        "models:\n"
        "  llama-2-13b: {min_memory_gb: 26, preferred_gpu: v100_32gb}\n"
        "  strict: {min_memory_gb: 26, preferred_gpu: v100_32gb, emulates: llama-2-13b, latency_target_ms: 9000}\n"
    )
    return path


def test_the_round_corrects_the_preferred_gpu_types_figure_only(tmp_path):
    settings = ScalerSettings(fleet_config=fleet(tmp_path))
    modelled = instance_capacity(ModelSpec("llama-2-13b", "llama-2-13b", "v100_32gb"))
    assert modelled is not None
    measured = {
        ("llama-2-13b", "v100_32gb"): Measured(modelled.requests_per_hour * 0.75, FULL_WEIGHT, NOW),
        ("strict", "h100_80gb"): Measured(1.0, FULL_WEIGHT, NOW),  # not the type it is sized for
    }
    capacity = capacity_per_instance(settings, measured, NOW)
    assert capacity("llama-2-13b") == pytest.approx(modelled.requests_per_hour * 0.75)
    own_target = instance_capacity(ModelSpec("strict", "llama-2-13b", "v100_32gb", latency_target_ms=9000))
    assert own_target is not None and capacity("strict") == pytest.approx(own_target.requests_per_hour)
    assert own_target.requests_per_hour != pytest.approx(modelled.requests_per_hour)  # its own target counts
    # The operator's one figure is every model's, measurements or not.
    fixed = capacity_per_instance(
        ScalerSettings(fleet_config=fleet(tmp_path), requests_per_instance_hour=500), measured
    )
    assert fixed("llama-2-13b") == 500


async def test_an_evaluation_plans_with_the_measured_capacity():
    store = FakeScalerStore()
    settings = ScalerSettings()  # the default fleet file: llama-2-13b on v100_32gb
    modelled = capacity_per_instance(settings)("llama-2-13b")
    rps = modelled * 0.6 / 3600  # instances serve 60% of the model's figure, fully busy
    for i in range(FULL_WEIGHT):
        event = report("llama-2-13b", rps, 1.0, 1000).model_copy(update={"occurred_at": NOW - timedelta(seconds=i)})
        assert await recording.record_server_metrics(store, CONSUMER, event)
    await busy_model(store, "llama-2-13b")
    result = await evaluate(store)
    assert result.actions and {a.inputs["capacity_rph"] for a in result.actions} == {round(modelled * 0.6, 1)}
