"""What the monitor knows about the fleet: scrape targets and the observations it judges."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from services.monitor.domain.cost import ServerCost
from services.monitor.domain.rules import Metric


@dataclass(frozen=True)
class Target:
    """A Triton server to scrape, learned from allocation events."""

    server_id: str
    metrics_url: str
    region: str
    gpu_type: str
    gpu_count: int = 1
    cost_per_hour: float = 0.0
    pricing_class: str = "on_demand"
    consecutive_failures: int = 0
    models: Mapping[str, str] = field(default_factory=dict)  # Triton model name -> platform model id

    def cost(self) -> ServerCost:
        """The server's price facts, for cost per token."""
        return ServerCost(
            self.region, self.gpu_type, self.gpu_count, self.pricing_class, self.cost_per_hour, max(1, len(self.models))
        )

    def model_id(self, triton_model: str) -> str:
        """The platform's id of a model Triton serves (its Triton name when no ModelLoaded said)."""
        return self.models.get(triton_model, triton_model)


@dataclass(frozen=True)
class Observation:
    """One value of one metric for one scope (server, model and region, consumer group...)."""

    metric: Metric
    scope: Mapping[str, str]
    value: float | None


def next_failures(previous: int, scraped_ok: bool) -> int:
    """Failed scrapes in a row after this one (any success starts the count again)."""
    return 0 if scraped_ok else previous + 1
