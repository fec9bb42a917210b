"""The fleet as the cost service sees it, and what it costs per hour and per 1,000 tokens."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from services.cost.domain.pricing import Catalogue, PricingClass

IDLE = "(no model)"  # the by-model bucket of servers that hold no model


@dataclass(frozen=True)
class Server:
    """One allocated server: where it runs, what it is paid as, what it holds, how busy it is."""

    server_id: str
    region: str
    gpu_type: str
    gpu_count: int
    pricing_class: PricingClass
    reported_cost_per_hour: float
    models: tuple[str, ...] = ()
    utilization: float | None = None
    throughput_rps: float | None = None


@dataclass(frozen=True)
class PoolCapacity:
    """A pool's GPUs per pricing class as the allocator last announced them (after a capacity change)."""

    region: str
    gpu_type: str
    on_demand: int
    spot: int
    reserved: int
    commitment_months: int | None = None

    @property
    def key(self) -> str:
        """`region/gpu_type`, as the report names pools."""
        return f"{self.region}/{self.gpu_type}"


def committed_per_hour(capacity: Iterable[PoolCapacity], catalogue: Catalogue) -> float:
    """Reserved GPUs x the reserved rate: paid every hour of the commitment, whether a server uses them or not."""
    total = 0.0
    for pool in capacity:
        price = catalogue.price(pool.region, pool.gpu_type)
        if price is not None:
            total += pool.reserved * price.reserved
    return round(total, 6)


@dataclass(frozen=True)
class DemandWindow:
    """Traffic of one model in one region over one window (from the router)."""

    model_id: str
    region: str
    window_start: datetime
    window_end: datetime
    requests: int
    tokens: int
    latency_ms: float | None = None  # the router's median: queueing + batching + inference


@dataclass(frozen=True)
class FleetCost:
    """Dollars per hour of the whole fleet and broken down every way the report shows."""

    total: float
    by_region: dict[str, float] = field(default_factory=dict)
    by_gpu_type: dict[str, float] = field(default_factory=dict)
    by_pricing_class: dict[str, float] = field(default_factory=dict)
    by_model: dict[str, float] = field(default_factory=dict)
    by_pool: dict[tuple[str, str, str], float] = field(default_factory=dict)


def server_cost_per_hour(server: Server, catalogue: Catalogue) -> float:
    """The catalogue price x GPU count; the allocator's reported price when the catalogue lacks it."""
    price = catalogue.price(server.region, server.gpu_type)
    if price is None:
        return server.reported_cost_per_hour
    return price.rate(server.pricing_class) * server.gpu_count


def fleet_cost(servers: Iterable[Server], catalogue: Catalogue) -> FleetCost:
    """Cost per hour in all and by region, GPU type, pricing class, pool and model.

    A server's cost is split equally among the models it holds: co-located models share the
    GPU, and without per-model busy time an equal split is the honest default.
    """
    sums: dict[str, defaultdict[object, float]] = {k: defaultdict(float) for k in ("r", "g", "c", "m", "p")}
    total = 0.0
    for server in servers:
        cost = server_cost_per_hour(server, catalogue)
        total += cost
        sums["r"][server.region] += cost
        sums["g"][server.gpu_type] += cost
        sums["c"][server.pricing_class.value] += cost
        sums["p"][(server.region, server.gpu_type, server.pricing_class.value)] += cost
        for model in server.models or (IDLE,):
            sums["m"][model] += cost / max(len(server.models), 1)
    rounded = {k: {key: round(v, 6) for key, v in d.items()} for k, d in sums.items()}
    return FleetCost(
        total=round(total, 6),
        by_region={str(k): v for k, v in rounded["r"].items()},
        by_gpu_type={str(k): v for k, v in rounded["g"].items()},
        by_pricing_class={str(k): v for k, v in rounded["c"].items()},
        by_model={str(k): v for k, v in rounded["m"].items()},
        by_pool={k: v for k, v in rounded["p"].items() if isinstance(k, tuple)},
    )


def _span_hours(windows: Sequence[DemandWindow]) -> float:
    """Hours from the first window's start to the last one's end (replicas' windows overlap)."""
    start = min(w.window_start for w in windows)
    end = max(w.window_end for w in windows)
    return max((end - start).total_seconds(), 1.0) / 3600.0


def rate_per_hour(
    windows: Iterable[DemandWindow], by_region: bool = False
) -> dict[tuple[str, str], tuple[float, float]]:
    """(requests, tokens) per hour for each (model, region), or (model, "") when not by region."""
    groups: defaultdict[tuple[str, str], list[DemandWindow]] = defaultdict(list)
    for window in windows:
        groups[(window.model_id, window.region if by_region else "")].append(window)
    return {
        key: (sum(w.requests for w in ws) / _span_hours(ws), sum(w.tokens for w in ws) / _span_hours(ws))
        for key, ws in groups.items()
    }


def cost_per_1k_tokens(by_model_per_hour: dict[str, float], windows: Iterable[DemandWindow]) -> dict[str, float]:
    """Dollars per 1,000 tokens (in + out) of each model that had traffic: its hourly cost / kilotokens."""
    rates = rate_per_hour(windows)
    result: dict[str, float] = {}
    for (model, _), (_, tokens_per_hour) in rates.items():
        if tokens_per_hour > 0 and model in by_model_per_hour:
            result[model] = round(by_model_per_hour[model] / (tokens_per_hour / 1000.0), 8)
    return result
