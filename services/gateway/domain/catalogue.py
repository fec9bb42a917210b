"""The servable models as the gateway sees them: configured, and where the fleet has them loaded (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from services.gateway.domain.chat import ChatTemplate


@dataclass(frozen=True)
class ModelSpec:
    """A model the platform serves: its chat template and, if known, its cache tier."""

    model_id: str
    template: ChatTemplate = ChatTemplate.PLAIN
    tier: str | None = None


@dataclass
class Catalogue:
    """Configured models, and the (server, region) placements the allocation events announce."""

    specs: dict[str, ModelSpec]
    servers: dict[str, str] = field(default_factory=dict)  # server id -> region
    placements: dict[str, set[str]] = field(default_factory=dict)  # model id -> server ids

    def knows(self, model: str) -> bool:
        """Whether requests for `model` are accepted: configured, or loaded somewhere."""
        return model in self.specs or bool(self.placements.get(model))

    def template(self, model: str) -> ChatTemplate:
        """The chat template of `model` (plain for a model only the fleet knows)."""
        spec = self.specs.get(model)
        return spec.template if spec else ChatTemplate.PLAIN

    def server_allocated(self, server_id: str, region: str) -> None:
        """A server came up in `region`."""
        self.servers[server_id] = region

    def server_released(self, server_id: str) -> None:
        """A server is gone, with every model on it."""
        self.servers.pop(server_id, None)
        for placed in self.placements.values():
            placed.discard(server_id)

    def model_loaded(self, model: str, server_id: str, region: str) -> None:
        """`model` serves on `server_id`."""
        self.servers.setdefault(server_id, region)
        self.placements.setdefault(model, set()).add(server_id)

    def model_unloaded(self, model: str, server_id: str) -> None:
        """`model` no longer serves on `server_id`."""
        self.placements.get(model, set()).discard(server_id)

    def listing(self, created: int) -> list[dict[str, Any]]:
        """`GET /v1/models`' data: each model with its tier, regions and whether it is loaded."""
        names = sorted(set(self.specs) | {m for m, placed in self.placements.items() if placed})
        return [self._entry(name, created) for name in names]

    def _entry(self, name: str, created: int) -> dict[str, Any]:
        placed = self.placements.get(name, set())
        regions = sorted({self.servers[s] for s in placed if s in self.servers})
        spec = self.specs.get(name)
        return {
            "id": name,
            "object": "model",
            "created": created,
            "owned_by": "llmfleet",
            "tier": spec.tier if spec else None,
            "regions": regions,
            "loaded": bool(placed),
        }
