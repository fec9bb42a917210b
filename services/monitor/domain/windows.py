"""Sliding windows over a server's scrapes: counter deltas become rates, shares and averages.

Utilisation on an emulated GPU (no `nv_gpu_utilization`) is derived from busy time: the compute
time (input + infer + output) Triton charged in the window, divided by the window. Triton charges
every request of a batch the whole batch's compute time, so the sum is scaled by executions per
inference to count each batch once. Queue time is waiting, not work, so it is left out.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from services.monitor.domain.triton_metrics import ModelCounters, ServerSample


@dataclass(frozen=True)
class ServerWindow:
    """One server's (model_id None) or one model's aggregate over a window."""

    model_id: str | None
    window_s: float
    utilization: float
    utilization_derived: bool
    queue_depth: float
    requests_ok: int
    requests_failed: int
    throughput_rps: float
    error_rate: float | None
    latency_avg_ms: float | None
    gpu_memory_used_fraction: float | None = None


def slide(history: tuple[ServerSample, ...], sample: ServerSample, window_s: float) -> tuple[ServerSample, ...]:
    """The samples still inside the window once `sample` arrives (a counter reset starts afresh)."""
    if history and _was_reset(history[-1], sample):
        return (sample,)
    kept = tuple(s for s in history if s.at >= sample.at - window_s and s.at < sample.at)
    return (*kept, sample)


def _was_reset(previous: ServerSample, current: ServerSample) -> bool:
    """A restarted server starts its counters at zero again."""
    return any(
        model in current.models and current.models[model].success < counters.success
        for model, counters in previous.models.items()
    )


def _busy_us(old: ModelCounters, new: ModelCounters) -> float:
    inferences = new.inferences - old.inferences
    if inferences <= 0:
        return 0.0
    executions = new.executions - old.executions
    return (new.compute_us - old.compute_us) * min(1.0, executions / inferences)


def _window(
    model_id: str | None, old: ModelCounters, new: ModelCounters, span_s: float, busy_us: float
) -> ServerWindow:
    ok = int(new.success - old.success)
    failed = int(new.failure - old.failure)
    requests = ok + failed
    return ServerWindow(
        model_id=model_id,
        window_s=span_s,
        utilization=min(1.0, max(0.0, busy_us / (span_s * 1e6))),
        utilization_derived=True,
        queue_depth=new.pending,
        requests_ok=ok,
        requests_failed=failed,
        throughput_rps=requests / span_s,
        error_rate=failed / requests if requests else None,
        latency_avg_ms=(new.request_us - old.request_us) / ok / 1000 if ok else None,
    )


def _total(counters: list[ModelCounters]) -> ModelCounters:
    return ModelCounters(*(sum(getattr(c, f) for c in counters) for f in ModelCounters.__dataclass_fields__))


def aggregate(history: tuple[ServerSample, ...]) -> list[ServerWindow]:
    """The server's window first (model_id None), then one per model; empty with under two samples."""
    if len(history) < 2:
        return []
    oldest, newest = history[0], history[-1]
    span_s = newest.at - oldest.at
    if span_s <= 0:
        return []
    per_model = []
    for model, new in sorted(newest.models.items()):
        old = oldest.models.get(model, ModelCounters())
        per_model.append(_window(model, old, new, span_s, _busy_us(old, new)))
    olds = [oldest.models.get(m, ModelCounters()) for m in newest.models]
    busy = sum(_busy_us(oldest.models.get(m, ModelCounters()), n) for m, n in newest.models.items())
    server = _window(None, _total(olds), _total(list(newest.models.values())), span_s, busy)
    if newest.gpu_utilization is not None:
        # A real GPU reports its own utilisation; that wins over the derived figure.
        utilization = min(1.0, max(0.0, newest.gpu_utilization))
        server = replace(server, utilization=utilization, utilization_derived=False)
    server = replace(server, gpu_memory_used_fraction=newest.gpu_memory_used_fraction)
    return [server, *per_model]
