"""The Prometheus parser and sliding windows on real Triton output captured from the local stack."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.monitor.domain.triton_metrics import ModelCounters, ServerSample, parse_triton_metrics
from services.monitor.domain.windows import aggregate, slide

DATA = Path(__file__).parent / "data"


def captured(name: str, at: float) -> ServerSample:
    return parse_triton_metrics((DATA / name).read_text(), at)


def test_reads_the_per_model_counters_of_a_real_triton():
    sample = captured("triton_use1_a100_metrics.txt", 100.0)
    tinylm = sample.models["tinylm"]
    assert tinylm.success == 6
    assert tinylm.failure == 0  # four reasons, all zero, summed
    assert tinylm.inferences == 6 and tinylm.executions == 6
    assert tinylm.request_us == 78171
    assert tinylm.queue_us == 12804
    assert tinylm.compute_us == 319 + 64543 + 477  # input + infer + output
    assert tinylm.pending == 0
    assert sample.at == 100.0


def test_an_emulated_gpu_reports_no_gpu_gauges():
    sample = captured("triton_euw1_v100_metrics.txt", 0.0)
    assert sample.gpu_utilization is None and sample.gpu_memory_used_fraction is None
    assert sample.models["tinylm"].success == 0


def test_gpu_gauges_are_read_where_a_gpu_exists():
    text = (
        'nv_gpu_utilization{gpu_uuid="GPU-1"} 0.5\nnv_gpu_utilization{gpu_uuid="GPU-2"} 0.7\n'
        'nv_gpu_memory_total_bytes{gpu_uuid="GPU-1"} 100\nnv_gpu_memory_used_bytes{gpu_uuid="GPU-1"} 25\n'
    )
    sample = parse_triton_metrics(text, 0.0)
    assert sample.gpu_utilization == pytest.approx(0.6)
    assert sample.gpu_memory_used_fraction == pytest.approx(0.25)


def test_text_that_is_not_prometheus_is_an_error():
    with pytest.raises(ValueError):
        parse_triton_metrics("<html>502 bad gateway</html>", 0.0)


def test_two_real_scrapes_give_rates_and_derived_utilisation():
    first = captured("triton_use1_a100_metrics.txt", 100.0)
    later = captured("triton_use1_a100_metrics_later.txt", 110.0)
    server, tinylm = aggregate(slide((first,), later, window_s=60))
    assert server.model_id is None and tinylm.model_id == "tinylm"
    assert server.requests_ok == 10 and server.requests_failed == 0
    assert server.throughput_rps == pytest.approx(1.0)
    assert server.error_rate == 0.0
    assert server.utilization_derived is True
    old, new = first.models["tinylm"], later.models["tinylm"]
    # Ten concurrent requests ran in two executions: the batch's compute time counts once.
    busy_us = (new.compute_us - old.compute_us) * (new.executions - old.executions) / (new.inferences - old.inferences)
    assert server.utilization == pytest.approx(busy_us / 10e6)
    assert 0.0 < server.utilization < 1.0
    assert server.latency_avg_ms == pytest.approx((new.request_us - old.request_us) / 10 / 1000)


def sample(at: float, success: float, compute_us: float = 0.0, pending: float = 0.0) -> ServerSample:
    counters = ModelCounters(success=success, inferences=success, executions=success, compute_us=compute_us)
    return ServerSample(at=at, models={"m": ModelCounters(**{**counters.__dict__, "pending": pending})})


def test_one_sample_is_no_window_yet():
    assert aggregate((sample(0, 0),)) == []


def test_samples_older_than_the_window_slide_out():
    history: tuple[ServerSample, ...] = ()
    for at in range(0, 100, 5):
        history = slide(history, sample(at, at), window_s=30)
    assert [s.at for s in history] == [65, 70, 75, 80, 85, 90, 95]
    assert aggregate(history)[0].window_s == 30


def test_a_restarted_server_starts_a_fresh_window():
    history = slide((sample(0, 50), sample(5, 60)), sample(10, 3), window_s=60)
    assert len(history) == 1 and aggregate(history) == []


def test_busy_time_over_the_window_is_capped_at_full_utilisation():
    server = aggregate((sample(0, 0), sample(10, 10, compute_us=30e6, pending=7)))[0]
    assert server.utilization == 1.0
    assert server.queue_depth == 7


counter_steps = st.lists(
    st.tuples(st.integers(0, 50), st.integers(0, 5), st.integers(1, 10), st.floats(0, 5e6)), min_size=2, max_size=12
)


@given(counter_steps)
def test_windows_from_growing_counters_are_within_bounds(steps):
    history: tuple[ServerSample, ...] = ()
    totals = ModelCounters()
    for i, (ok, failed, batch, compute_us) in enumerate(steps):
        totals = ModelCounters(
            success=totals.success + ok,
            failure=totals.failure + failed,
            inferences=totals.inferences + ok,
            executions=totals.executions + (ok + batch - 1) // batch,
            compute_us=totals.compute_us + compute_us,
        )
        history = slide(history, ServerSample(at=i * 5.0, models={"m": totals}), window_s=30)
    for window in aggregate(history):
        assert 0.0 <= window.utilization <= 1.0
        assert window.requests_ok >= 0 and window.requests_failed >= 0
        assert window.error_rate is None or 0.0 <= window.error_rate <= 1.0
        assert window.window_s <= 30
