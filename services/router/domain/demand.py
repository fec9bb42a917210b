"""Windowed demand per (model, region): counts, tokens, latency percentiles, batches."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class DemandCounts:
    """One model's traffic from one region in the current window."""

    requests: int = 0
    ok: int = 0
    rejected: int = 0
    failed: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    batches: int = 0
    latencies_ms: list[float] = field(default_factory=list)


def percentile(values: list[float], q: float) -> float | None:
    """The q-quantile (0..1) by nearest rank; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]


@dataclass
class DemandWindow:
    """Accumulates until `take` hands the window over and starts the next."""

    counts: dict[tuple[str, str], DemandCounts] = field(default_factory=dict)

    def record(
        self, model_id: str, region: str, status: str, tokens_in: int, tokens_out: int, latency_ms: float
    ) -> None:
        """Count one finished request (status ok / rejected / failed)."""
        c = self.counts.setdefault((model_id, region), DemandCounts())
        c.requests += 1
        setattr(c, status, getattr(c, status) + 1)
        c.tokens_in += tokens_in
        c.tokens_out += tokens_out
        if status == "ok":
            c.latencies_ms.append(latency_ms)

    def record_batch(self, model_id: str, region: str) -> None:
        """Count one batch sent for the model (attributed to its lead request's region)."""
        self.counts.setdefault((model_id, region), DemandCounts()).batches += 1

    def take(self) -> dict[tuple[str, str], DemandCounts]:
        """The window's counts; the accumulator starts empty again."""
        counts, self.counts = self.counts, {}
        return counts
