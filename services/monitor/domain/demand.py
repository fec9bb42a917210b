"""What the router's demand windows tell the monitor about a model in a region."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DemandFigures:
    """The router's latest percentiles and the cost per token for one model in one region."""

    p50: float | None
    p95: float | None
    p99: float | None
    cost_per_token: float | None
