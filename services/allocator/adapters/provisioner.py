"""Provisioners make a placement real: start a server, load and unload models, stop it.

`LocalProvisioner` runs one Triton process per server on this machine, each one emulating a GPU
of the server's type, and loads models through Triton's repository API (`shared.triton`). The
processes are started and stopped by the local stack's launcher, run as a program
(`python -m deploy.local.triton start|stop`): the service does not import the development stack,
and the stack keeps its records of every server, so `status` and `down` see these too. A server
started for a model the GPU performance model knows is told to emulate it (`--emulates=...`): its
batches then last what that model takes on the server's GPU type.
A cloud or Kubernetes provisioner implements the same protocol.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from services.allocator.domain.planner import Emulation
from services.allocator.domain.reconciliation import ServerObserved
from shared import triton
from shared.streaming import stream_variant

log = logging.getLogger(__name__)

# The local stack's launcher, run from the repository root (where `deploy/` lives in development).
LOCAL_LAUNCHER = (sys.executable, "-m", "deploy.local.triton")
REPO_ROOT = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class ServerEndpoint:
    """Where a started server answers."""

    endpoint: str  # host:port of Triton's HTTP API
    metrics_url: str


class ProvisioningError(RuntimeError):
    """A server could not be started, or a model not loaded; the message says why."""


class Provisioner(Protocol):
    """What the allocator needs from whatever runs the servers."""

    async def start_server(
        self, server_id: str, region: str, gpu_type: str, gpu_count: int, emulation: Emulation | None = None
    ) -> ServerEndpoint:
        """Start (or find running) the server and return its addresses once it answers.

        `emulation`: what an emulated GPU times its batches as (real GPUs, and pools, ignore it).
        """
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
        """Stop the server (nothing when it is not running); ProvisioningError when it could not."""
        ...

    async def observe(self, prefix: str) -> dict[str, ServerObserved]:
        """Every server of this deployment (ids starting `<prefix>-`) that exists: alive, ready, what it has loaded."""
        ...


class LocalProvisioner:
    """Local Triton processes named after the server id, in EXPLICIT model-control mode."""

    def __init__(
        self,
        base_port: int = 8100,
        load_timeout_s: float = 120.0,
        launcher: Sequence[str] = LOCAL_LAUNCHER,
        stream_variants: bool = True,
    ) -> None:
        self._base_port = base_port
        self._load_timeout_s = load_timeout_s
        self._launcher = tuple(launcher)
        # Loading a model's streaming variant too adds its load time (~2 s for tinylm here) to every
        # start: a deployment that streams nothing (the demo) leaves it off.
        self._stream_variants = stream_variants

    async def start_server(
        self, server_id: str, region: str, gpu_type: str, gpu_count: int, emulation: Emulation | None = None
    ) -> ServerEndpoint:
        """Start a Triton process emulating one GPU of `gpu_type` (the count is bookkeeping locally)."""
        options = []
        if emulation is not None:
            options = [f"--emulates={emulation.model}", f"--quantisation={emulation.quantisation}"]
            options.append(f"--tensor-parallel={emulation.tensor_parallel}")
        info = await self._launch("start", server_id, gpu_type, region, str(self._base_port), *options)
        return ServerEndpoint(info["http_url"], info["metrics_url"])

    async def _launch(self, *args: str) -> dict[str, str]:
        """Run the launcher; its JSON answer, or ProvisioningError with the reason it gives."""
        try:
            process = await asyncio.create_subprocess_exec(
                *self._launcher, *args, stdout=asyncio.subprocess.PIPE, cwd=REPO_ROOT
            )
            out, _ = await process.communicate()  # its stderr (install progress, errors) joins ours
        except OSError as error:
            raise ProvisioningError(f"{args[0]} {args[1]} failed: {error}") from error
        try:
            answer = dict(json.loads(out.decode().strip().splitlines()[-1]))
        except (ValueError, IndexError):
            answer = {}
        if process.returncode != 0 or "error" in answer:
            reason = answer.get("error") or f"the launcher exited with {process.returncode} (see the log)"
            raise ProvisioningError(str(reason))
        # Nested answers (`list`) stay JSON text, so every answer is a flat dict of strings.
        return {key: value if isinstance(value, str) else json.dumps(value) for key, value in answer.items()}

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
        if self._stream_variants and (variant := stream_variant(triton_model)) in names:  # docs/router.md
            try:
                await asyncio.to_thread(triton.load_model, endpoint, variant, self._load_timeout_s)
            except (RuntimeError, TimeoutError, OSError) as error:  # the model serves; streams come unstreamed
                log.warning("%s on %s loaded without its streaming variant: %s", triton_model, endpoint, error)

    async def model_ready(self, endpoint: str, triton_model: str) -> bool:
        """GET /v2/models/<name>/ready answers 200."""
        return bool(await asyncio.to_thread(triton.model_ready, endpoint, triton_model))

    async def unload_model(self, endpoint: str, triton_model: str) -> None:
        """Unload through the repository API and wait until its instances are gone."""
        try:
            await asyncio.to_thread(triton.unload_model, endpoint, triton_model)
            if stream_variant(triton_model) in (await loaded_models(endpoint) or ()):
                await asyncio.to_thread(triton.unload_model, endpoint, stream_variant(triton_model))
        except (RuntimeError, TimeoutError, OSError) as error:
            raise ProvisioningError(f"unloading {triton_model} on {endpoint} failed: {error}") from error

    async def stop_server(self, server_id: str) -> None:
        """SIGTERM the process group, SIGKILL after a grace period; forget the server."""
        await self._launch("stop", server_id)

    async def observe(self, prefix: str) -> dict[str, ServerObserved]:
        """The launcher's records of this deployment's servers, and the models each ready one has loaded."""
        listed = json.loads((await self._launch("list")).get("servers", "{}"))
        seen = {}
        for server_id, info in listed.items():
            if not server_id.startswith(f"{prefix}-"):
                continue
            alive, ready = bool(info.get("running")), bool(info.get("ready"))
            loaded = await loaded_models(str(info["http_url"])) if ready else None
            seen[server_id] = ServerObserved(server_id, alive, ready, loaded)
        return seen


async def server_answers(endpoint: str) -> bool:
    """True when a Triton server answers ready at `endpoint` (anyone's server: no provisioner involved)."""
    return bool(await asyncio.to_thread(triton.server_ready, endpoint))


async def loaded_models(endpoint: str) -> frozenset[str] | None:
    """Names READY in the server's repository index; None when the index cannot be read."""
    try:
        index = await asyncio.to_thread(triton.repository_index, endpoint)
    except (OSError, RuntimeError, ValueError):
        return None
    return frozenset(str(entry.get("name")) for entry in index if entry.get("state") == "READY")
