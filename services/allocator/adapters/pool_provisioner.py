"""A provisioner over Triton servers that something else runs (Compose services, a Kubernetes pool).

The allocator cannot start processes there; it is given the pool's servers (address, region, GPU
type) and hands out one that is ready and serves nothing yet. Loading and unloading go through
Triton's repository API as with local servers; "stopping" unloads every model and returns the
server to the pool.

Which pool server each server id holds is kept in the allocator's table `pool_assignment`,
written before any model is loaded on it: a restarted allocator (or another replica) knows what
it handed out, `stop_server` works after a restart, and a server left assigned by a crash midway
shows up in `observe` for the reconciler to give back. A pool server is handed out only when no
assignment names it and it is ready and idle (its repository index has nothing READY).
"""

from __future__ import annotations

import asyncio

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.allocator.adapters.orm import pool_assignment
from services.allocator.adapters.provisioner import LocalProvisioner, ProvisioningError, ServerEndpoint, loaded_models
from services.allocator.domain.planner import Emulation
from services.allocator.domain.reconciliation import ServerObserved
from services.allocator.settings import PoolServer
from shared import triton


class PoolProvisioner(LocalProvisioner):
    """Hands out free servers of a fixed pool; assignments on record; models load through the repository API."""

    def __init__(
        self, pool: list[PoolServer], sessions: async_sessionmaker[AsyncSession], load_timeout_s: float = 120.0
    ) -> None:
        super().__init__(load_timeout_s=load_timeout_s)
        self._pool = {server.endpoint: server for server in pool}
        self._sessions = sessions

    async def _assigned(self) -> dict[str, str]:
        """server id -> pool endpoint, as on record."""
        async with self._sessions() as session:
            rows = await session.execute(select(pool_assignment.c.server_id, pool_assignment.c.endpoint))
            return {row.server_id: row.endpoint for row in rows}

    async def start_server(
        self, server_id: str, region: str, gpu_type: str, gpu_count: int, emulation: Emulation | None = None
    ) -> ServerEndpoint:
        """The server already assigned to `server_id`, or a free one of that region and type (then on record).

        A pool's servers run as their deployment started them: `emulation` is not theirs to change.
        """
        assigned = await self._assigned()
        if server_id in assigned:
            return self._endpoint(assigned[server_id])
        taken = set(assigned.values())
        for candidate in self._pool.values():
            if (candidate.region, candidate.gpu_type) != (region, gpu_type) or candidate.endpoint in taken:
                continue
            if await asyncio.to_thread(_ready_and_idle, candidate.endpoint) and await self._assign(
                candidate.endpoint, server_id
            ):
                return self._endpoint(candidate.endpoint)
        raise ProvisioningError(f"no free server in the pool for {gpu_type} in {region} ({len(self._pool)} in pool)")

    async def _assign(self, endpoint: str, server_id: str) -> bool:
        """Record the assignment; False when another replica took that pool server first."""
        async with self._sessions.begin() as session:
            inserted = await session.execute(
                insert(pool_assignment)
                .values(endpoint=endpoint, server_id=server_id)
                .on_conflict_do_nothing()
                .returning(pool_assignment.c.endpoint)
            )
            return inserted.first() is not None

    def _endpoint(self, endpoint: str) -> ServerEndpoint:
        server = self._pool.get(endpoint)
        if server is None:  # assigned under an earlier configuration: still reachable at its address
            return ServerEndpoint(endpoint, f"http://{endpoint}/metrics")
        return ServerEndpoint(server.endpoint, server.metrics_url)

    async def stop_server(self, server_id: str) -> None:
        """Unload everything the server serves, then give it back to the pool (the record goes last)."""
        endpoint = (await self._assigned()).get(server_id)
        if endpoint is None:
            return
        try:
            index = await asyncio.to_thread(triton.repository_index, endpoint)
        except (OSError, RuntimeError) as error:
            raise ProvisioningError(f"reading the models on {endpoint} failed: {error}") from error
        for entry in index:
            if entry.get("state") == "READY":
                await self.unload_model(endpoint, str(entry["name"]))
        async with self._sessions.begin() as session:
            await session.execute(pool_assignment.delete().where(pool_assignment.c.server_id == server_id))

    async def observe(self, prefix: str) -> dict[str, ServerObserved]:
        """The assigned pool servers of this deployment: a pool server is alive while it is in the pool."""
        seen = {}
        for server_id, endpoint in (await self._assigned()).items():
            if not server_id.startswith(f"{prefix}-"):
                continue
            ready = await asyncio.to_thread(_ready, endpoint)
            loaded = await loaded_models(endpoint) if ready else None
            seen[server_id] = ServerObserved(server_id, alive=True, ready=ready, loaded=loaded)
        return seen


def _ready(endpoint: str) -> bool:
    try:
        return bool(triton.server_ready(endpoint))
    except (OSError, RuntimeError):
        return False


def _ready_and_idle(endpoint: str) -> bool:
    try:
        return triton.server_ready(endpoint) and not any(
            entry.get("state") == "READY" for entry in triton.repository_index(endpoint)
        )
    except (OSError, RuntimeError):  # unreachable, or no repository API: not ours to hand out
        return False
