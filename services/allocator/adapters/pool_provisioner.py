"""A provisioner over Triton servers that something else runs (Compose services, a Kubernetes pool).

The allocator cannot start processes there; it is given the pool's servers (address, region, GPU
type) and hands out one that is ready and serves nothing yet. Loading and unloading go through
Triton's repository API as with local servers; "stopping" unloads every model and returns the
server to the pool. Whether a server is free is read from the server itself (its repository
index), so a restarted allocator does not hand out a server that is still serving.
"""

from __future__ import annotations

import asyncio

from services.allocator.adapters.provisioner import LocalProvisioner, ProvisioningError, ServerEndpoint
from services.allocator.domain.planner import Emulation
from services.allocator.settings import PoolServer
from shared import triton


class PoolProvisioner(LocalProvisioner):
    """Hands out free servers of a fixed pool; models load through the repository API."""

    def __init__(self, pool: list[PoolServer], load_timeout_s: float = 120.0) -> None:
        super().__init__(load_timeout_s=load_timeout_s)
        self._pool = pool
        self._assigned: dict[str, PoolServer] = {}  # server id -> pool server

    async def start_server(
        self, server_id: str, region: str, gpu_type: str, gpu_count: int, emulation: Emulation | None = None
    ) -> ServerEndpoint:
        """The server already assigned to `server_id`, or a free one of that region and type.

        A pool's servers run as their deployment started them: `emulation` is not theirs to change.
        """
        if server_id in self._assigned:
            chosen = self._assigned[server_id]
            return ServerEndpoint(chosen.endpoint, chosen.metrics_url)
        taken = {server.endpoint for server in self._assigned.values()}
        for candidate in self._pool:
            if (candidate.region, candidate.gpu_type) != (region, gpu_type) or candidate.endpoint in taken:
                continue
            if await asyncio.to_thread(_ready_and_idle, candidate.endpoint):
                self._assigned[server_id] = candidate
                return ServerEndpoint(candidate.endpoint, candidate.metrics_url)
        raise ProvisioningError(f"no free server in the pool for {gpu_type} in {region} ({len(self._pool)} in pool)")

    async def stop_server(self, server_id: str) -> None:
        """Unload everything the server serves and give it back to the pool."""
        server = self._assigned.pop(server_id, None)
        if server is None:
            return
        for entry in await asyncio.to_thread(triton.repository_index, server.endpoint):
            if entry.get("state") == "READY":
                await self.unload_model(server.endpoint, str(entry["name"]))


def _ready_and_idle(endpoint: str) -> bool:
    try:
        return triton.server_ready(endpoint) and not any(
            entry.get("state") == "READY" for entry in triton.repository_index(endpoint)
        )
    except (OSError, RuntimeError):  # unreachable, or no repository API: not ours to hand out
        return False
