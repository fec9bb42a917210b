"""The server registry: which Triton servers exist, what they serve, their health and load.

Built from allocation events (and static configuration); the shell persists the same changes in
the router's tables and reloads them at start, so a restart needs no replay.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from services.router.domain.scoring import Candidate


@dataclass
class Server:
    """One Triton server as the router knows it."""

    server_id: str
    endpoint: str
    region: str
    gpu_type: str
    cost_per_hour: float
    capacity: int = 1
    healthy: bool = True
    draining: bool = False  # under a spot reclaim notice: in-flight batches finish, no new ones
    inflight: int = 0
    ok: int = 0
    failed: int = 0

    def candidate(self) -> Candidate:
        """The scoring view of this server."""
        return Candidate(
            self.server_id, self.region, self.cost_per_hour, self.capacity, self.inflight, self.ok, self.failed
        )


@dataclass
class Registry:
    """Servers by id and model placements by server (a placement may arrive before its server)."""

    servers: dict[str, Server] = field(default_factory=dict)
    placements: dict[str, dict[str, str]] = field(default_factory=dict)  # server -> model -> Triton name
    # model -> servers with it: looked up per request, so it must not scan every server.
    by_model: dict[str, set[str]] = field(default_factory=dict)

    def add_server(self, server: Server) -> None:
        """Add or update a server, keeping its live load and history."""
        old = self.servers.get(server.server_id)
        if old is not None:
            server.inflight, server.ok, server.failed, server.healthy = old.inflight, old.ok, old.failed, old.healthy
            server.draining = old.draining
        self.servers[server.server_id] = server

    def drain_server(self, server_id: str) -> None:
        """Send the server no new batches (it is about to be taken away); unknown servers are ignored."""
        if (server := self.servers.get(server_id)) is not None:
            server.draining = True

    def remove_server(self, server_id: str) -> None:
        """Forget a released server and its placements."""
        self.servers.pop(server_id, None)
        for model_id in self.placements.pop(server_id, {}):
            self.by_model.get(model_id, set()).discard(server_id)

    def load_model(self, server_id: str, model_id: str, triton_model: str | None) -> None:
        """Record that the server serves the model (under its Triton name)."""
        self.placements.setdefault(server_id, {})[model_id] = triton_model or model_id
        self.by_model.setdefault(model_id, set()).add(server_id)

    def unload_model(self, server_id: str, model_id: str) -> None:
        """Record that the server no longer serves the model."""
        self.placements.get(server_id, {}).pop(model_id, None)
        self.by_model.get(model_id, set()).discard(server_id)

    def knows_model(self, model_id: str) -> bool:
        """True when some known server has the model, healthy or not (it may come back)."""
        return any(s in self.servers for s in self.by_model.get(model_id, ()))

    def candidates(self, model_id: str, exclude: frozenset[str] = frozenset()) -> list[Server]:
        """Healthy servers that have the model loaded and are not draining."""
        return [
            server
            for server_id in sorted(self.by_model.get(model_id, ()))
            if (server := self.servers.get(server_id)) is not None
            and server.healthy
            and not server.draining
            and server_id not in exclude
        ]

    def triton_name(self, server_id: str, model_id: str) -> str:
        """The name to call the model by on that server."""
        return self.placements.get(server_id, {}).get(model_id, model_id)

    def count_by_state(self) -> dict[str, int]:
        """How many servers are healthy and unhealthy (for the servers gauge)."""
        healthy = sum(1 for s in self.servers.values() if s.healthy)
        return {"healthy": healthy, "unhealthy": len(self.servers) - healthy}
