"""The calibration: the stored constants are the fit of the cited points, and reproduce each of them.

Tolerances (per point, in shared/performance/published.py; why in docs/performance-model.md):
Splitwise TP 8 10%, Splitwise TP 2/4 15%, TensorRT-LLM 35%, DistServe 50%; points held out of
the fit 40%.
"""

from __future__ import annotations

from dataclasses import astuple

import numpy as np
import pytest

from shared.performance import calibration, profile
from shared.performance.coldstart import ENGINE_START_S, STORAGE_BYTES_PER_S, Storage, cold_start_s, load_s
from shared.performance.published import (
    CITED_LOADS,
    CITED_POINTS,
    HELD_OUT_POINTS,
    SOURCES,
    SPLITWISE_DECODE_LINES,
    TRTLLM_H100_FP8_TTFT,
    CitedPoint,
)


def modelled_ms(point: CitedPoint) -> float:
    p = profile(point.gpu_type, point.model, "fp16", point.tensor_parallel)
    if point.kind == "prefill":
        return p.prefill_ms(point.tokens)
    return p.decode_step_ms(point.tokens, point.kv_tokens)


def point_id(point: CitedPoint) -> str:
    return f"{point.source}-{point.kind}-{point.gpu_type}-{point.model}-tp{point.tensor_parallel}-{point.tokens}"


def test_the_stored_constants_are_the_fit_of_the_cited_points():
    fitted, link = calibration.fit(CITED_POINTS)
    assert set(fitted) == set(calibration.EFFICIENCY)
    for name, efficiency in fitted.items():
        assert astuple(calibration.EFFICIENCY[name]) == pytest.approx(astuple(efficiency), rel=1e-5), name
    assert link == pytest.approx(calibration.LINK_INEFFICIENCY, rel=1e-5)


def test_the_fitted_efficiencies_are_physical():
    for name, e in calibration.EFFICIENCY.items():
        assert e.inv_bandwidth >= 1.0, f"{name}: more than the HBM datasheet bandwidth"
        assert e.inv_prefill_flops >= 1.0, f"{name}: more than peak FLOPs"
        assert e.inv_decode_flops >= 1.0, f"{name}: more than peak FLOPs"
        assert e.attention >= 2.0, f"{name}: attention cheaper than its ideal FLOP count"
        assert e.layer_hop_ms >= 0.0
    assert calibration.LINK_INEFFICIENCY >= 1.0


def test_every_cited_point_has_a_source_and_a_positive_time():
    for point in (*CITED_POINTS, *HELD_OUT_POINTS):
        assert point.source in SOURCES
        assert point.ms > 0 and 0 < point.tolerance < 1


@pytest.mark.parametrize("point", CITED_POINTS, ids=point_id)
def test_every_cited_point_is_reproduced_within_its_tolerance(point):
    error = modelled_ms(point) / point.ms - 1
    assert abs(error) <= point.tolerance, f"{error:+.1%} (tolerance {point.tolerance:.0%})"


@pytest.mark.parametrize("point", HELD_OUT_POINTS, ids=point_id)
def test_measurements_left_out_of_the_fit_are_predicted_within_their_tolerance(point):
    error = modelled_ms(point) / point.ms - 1
    assert abs(error) <= point.tolerance, f"{error:+.1%} (tolerance {point.tolerance:.0%})"


def test_held_out_points_are_predicted_well_on_average():
    errors = [abs(modelled_ms(p) / p.ms - 1) for p in HELD_OUT_POINTS]
    assert np.median(errors) < 0.10


@pytest.mark.parametrize("gpu_type", sorted(SPLITWISE_DECODE_LINES))
def test_splitwise_decode_lines_are_reproduced(gpu_type):
    """Intercept within 5%; slope within 35% (a 0.1 ms/sequence slope error is 2% of a step at B=32)."""
    intercept, slope = SPLITWISE_DECODE_LINES[gpu_type]
    p = profile(gpu_type, "llama-2-70b", "fp16", 8)
    batches = np.array([1, 2, 4, 8, 16, 32])
    fitted_slope, fitted_intercept = np.polyfit(batches, p.decode_step_ms_array(batches, batches * 576.0), 1)
    assert fitted_intercept == pytest.approx(intercept, rel=0.05)
    assert fitted_slope == pytest.approx(slope, rel=0.35)


@pytest.mark.parametrize("case", [(m, tp, n) for (m, tp), by_n in TRTLLM_H100_FP8_TTFT.items() for n in by_n])
def test_the_h100_is_several_times_faster_than_the_a100_as_tensorrt_llm_reports(case):
    """TensorRT-LLM's H100 figures are FP8: the fp16 model is slower than them, but by less than 3x."""
    name, tp, n = case
    h100 = profile("h100_80gb", name, "fp16", tp).prefill_ms(n)
    a100 = profile("a100_80gb", name, "fp16", tp).prefill_ms(n)
    assert 1.0 <= h100 / TRTLLM_H100_FP8_TTFT[(name, tp)][n] <= 3.0
    assert a100 / h100 >= 1.5


@pytest.mark.parametrize("load", CITED_LOADS, ids=lambda load: f"{load.model}-{load.storage}")
def test_cited_weight_loads_are_reproduced(load):
    assert load_s(load.model, load.storage) == pytest.approx(load.seconds, rel=1e-9)
    assert cold_start_s(load.model, load.storage) == pytest.approx(load.seconds + ENGINE_START_S)


def test_storage_bandwidths_are_what_the_comment_says():
    gb_s = {s: round(bw / 1e9, 2) for s, bw in STORAGE_BYTES_PER_S.items()}
    assert gb_s == {Storage.NETWORK_DISK: 0.33, Storage.LOCAL_NVME: 1.64, Storage.STREAMED: 2.13}
