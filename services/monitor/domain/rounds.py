"""One scrape round, judged: per-server observations for alerts, per-model inputs for signals."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import fmean

from services.monitor.domain.fleet import Observation, Target
from services.monitor.domain.rules import Metric
from services.monitor.domain.windows import ServerWindow


@dataclass(frozen=True)
class TargetRound:
    """A target's outcome in one round: its failures in a row and its windows (empty when down)."""

    target: Target
    failures: int
    windows: Sequence[ServerWindow]
    error: str | None = None


def alert_observations(rounds: Sequence[TargetRound]) -> list[Observation]:
    """Per server: scrape failures always; utilisation and queue depth when it answered."""
    observations = []
    for r in rounds:
        scope = {"server_id": r.target.server_id, "region": r.target.region}
        observations.append(Observation(Metric.SCRAPE_FAILURES, scope, float(r.failures)))
        server = next((w for w in r.windows if w.model_id is None), None)
        if server is not None:
            observations.append(Observation(Metric.GPU_UTILIZATION, scope, server.utilization))
            observations.append(Observation(Metric.QUEUE_DEPTH, scope, server.queue_depth))
    return observations


def signal_inputs(rounds: Sequence[TargetRound]) -> list[Observation]:
    """Per model, region and GPU type: mean utilisation of its servers, worst queue of one of them.

    The scaler scales models, so signals are keyed by model; a server holding several models
    lends its utilisation to each of them. The seed scopes its utilisation signals per region x
    GPU type: servers of one model on A100s and on H100s are judged apart (one may be saturated
    while the other idles), and each signal names its GPU type.
    """
    utilization: dict[tuple[str, str, str], list[float]] = {}
    queue: dict[tuple[str, str, str], float] = {}
    for r in rounds:
        server = next((w for w in r.windows if w.model_id is None), None)
        for w in r.windows:
            if w.model_id is None or server is None:
                continue
            key = (r.target.model_id(w.model_id), r.target.region, r.target.gpu_type)
            utilization.setdefault(key, []).append(server.utilization)
            queue[key] = max(queue.get(key, 0.0), w.queue_depth)
    observations = []
    for (model_id, region, gpu_type), values in sorted(utilization.items()):
        scope = {"model_id": model_id, "region": region, "gpu_type": gpu_type}
        observations.append(Observation(Metric.GPU_UTILIZATION, scope, fmean(values)))
        observations.append(Observation(Metric.QUEUE_DEPTH, scope, queue[(model_id, region, gpu_type)]))
    return observations


def cost_per_hour_by_region(targets: Sequence[Target], per_server: Mapping[str, float]) -> dict[str, float]:
    """The fleet's $/h per region."""
    totals: dict[str, float] = {}
    for t in targets:
        totals[t.region] = totals.get(t.region, 0.0) + per_server.get(t.server_id, t.cost_per_hour)
    return totals
