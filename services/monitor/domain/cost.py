"""Cost per token: what the servers holding a model cost over a window, over the tokens they served."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Price:
    """$/h of one GPU of a type in a region, per pricing class."""

    on_demand: float
    spot: float
    reserved: float

    def per_hour(self, pricing_class: str) -> float:
        """The price for `pricing_class` (on_demand, spot or reserved)."""
        return {"spot": self.spot, "reserved": self.reserved}.get(pricing_class, self.on_demand)


@dataclass(frozen=True)
class ServerCost:
    """What the monitor knows about one server's price."""

    region: str
    gpu_type: str
    gpu_count: int
    pricing_class: str
    allocated_per_hour: float
    models: int = 1


def server_per_hour(server: ServerCost, prices: Mapping[tuple[str, str], Price]) -> float:
    """$/h: the cost service's current price list wins; the allocation's figure is the fallback."""
    price = prices.get((server.region, server.gpu_type))
    if price is None:
        return server.allocated_per_hour
    return price.per_hour(server.pricing_class) * server.gpu_count


def model_per_hour(servers: Iterable[ServerCost], prices: Mapping[tuple[str, str], Price]) -> float:
    """$/h of a model: each server's cost split evenly among the models it holds."""
    return sum(server_per_hour(s, prices) / max(1, s.models) for s in servers)


def cost_per_token(per_hour: float, window_s: float, tokens: int) -> float | None:
    """Dollars per token over a window; None when no token was served (no meaningful figure)."""
    if tokens <= 0 or window_s <= 0:
        return None
    return per_hour * window_s / 3600.0 / tokens
