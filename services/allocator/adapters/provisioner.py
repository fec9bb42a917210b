"""Provisioners make a placement real: start a server, load and unload models, stop it.

`LocalProvisioner` runs one Triton process per server on this machine, each one emulating a GPU
of the server's type (deploy/local/triton.py), and loads models through Triton's repository API.
A cloud or Kubernetes provisioner implements the same protocol.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol

from deploy.local import triton


@dataclass(frozen=True)
class ServerEndpoint:
    """Where a started server answers."""

    endpoint: str  # host:port of Triton's HTTP API
    metrics_url: str


class ProvisioningError(RuntimeError):
    """A server could not be started, or a model not loaded; the message says why."""


class Provisioner(Protocol):
    """What the allocator needs from whatever runs the servers."""

    async def start_server(self, server_id: str, region: str, gpu_type: str, gpu_count: int) -> ServerEndpoint:
        """Start (or find running) the server and return its addresses once it answers."""
        ...

    async def load_model(self, endpoint: str, triton_model: str) -> None:
        """Load a model by its repository name and return once it is ready."""
        ...

    async def model_ready(self, endpoint: str, triton_model: str) -> bool:
        """True when the model answers as ready on the server."""
        ...

    async def unload_model(self, endpoint: str, triton_model: str) -> None:
        """Unload a model and return once it is gone."""
        ...

    async def stop_server(self, server_id: str) -> None:
        """Stop the server (nothing when it is not running)."""
        ...


class LocalProvisioner:
    """Local Triton processes named after the server id, in EXPLICIT model-control mode."""

    def __init__(self, base_port: int = 8100, load_timeout_s: float = 120.0) -> None:
        self._base_port = base_port
        self._load_timeout_s = load_timeout_s

    async def start_server(self, server_id: str, region: str, gpu_type: str, gpu_count: int) -> ServerEndpoint:
        """Start a Triton process emulating one GPU of `gpu_type` (the count is bookkeeping locally)."""
        if gpu_type not in triton.PROFILES:
            raise ProvisioningError(f"no local emulation profile for GPU type {gpu_type}")
        try:
            info = await asyncio.to_thread(
                triton.start_server, server_id, triton.PROFILES[gpu_type], region=region, base_port=self._base_port
            )
        except (RuntimeError, TimeoutError, OSError) as error:
            raise ProvisioningError(f"starting {server_id} failed: {error}") from error
        return ServerEndpoint(str(info["http_url"]), str(info["metrics_url"]))

    async def load_model(self, endpoint: str, triton_model: str) -> None:
        """Load through the repository API; a name the repository lacks fails with that reason."""
        names = {str(entry.get("name")) for entry in await asyncio.to_thread(triton.repository_index, endpoint)}
        if triton_model not in names:
            raise ProvisioningError(
                f"model {triton_model} is not in the repository of {endpoint} (has {sorted(names)})"
            )
        try:
            await asyncio.to_thread(triton.load_model, endpoint, triton_model, self._load_timeout_s)
        except (RuntimeError, TimeoutError, OSError) as error:
            raise ProvisioningError(f"loading {triton_model} on {endpoint} failed: {error}") from error

    async def model_ready(self, endpoint: str, triton_model: str) -> bool:
        """GET /v2/models/<name>/ready answers 200."""
        return bool(await asyncio.to_thread(triton.model_ready, endpoint, triton_model))

    async def unload_model(self, endpoint: str, triton_model: str) -> None:
        """Unload through the repository API and wait until its instances are gone."""
        try:
            await asyncio.to_thread(triton.unload_model, endpoint, triton_model)
        except (RuntimeError, TimeoutError, OSError) as error:
            raise ProvisioningError(f"unloading {triton_model} on {endpoint} failed: {error}") from error

    async def stop_server(self, server_id: str) -> None:
        """SIGTERM the process group, SIGKILL after a grace period; forget the server."""
        await asyncio.to_thread(triton.stop_server, server_id)
