"""The control path of a chaos run: the allocator on the run's own stack, and what the harness looks at.

The allocator runs as `python -m services.allocator` (migrated first, as deploy/local/services.py
does) with the local provisioner: its launcher (`python -m deploy.local.triton`) inherits
LLMFLEET_RUN_DIR and LLMFLEET_CACHE, so every Triton server it starts is recorded in the run's
state file and runs in the run's stack folder, never in the developer's stack. Its fleet is small
(a YAML file in the run folder): one pool of 6 A100s in us-east-1 (4 free, 1 reserved, 1 used
outside the allocator), the `tinylm` model at one instance per GPU, at most 3 servers of 1 GPU.

The harness reads the allocator's tables directly (asyncpg, the allocator's own role) and finds
Triton processes in /proc: a `tritonserver` whose working folder is the run's stack and whose
shared-memory prefix carries a server name that starts with the allocator's prefix.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import time
from pathlib import Path
from typing import IO, Any

import asyncpg
import yaml

from benchmarks.chaos.control_tally import ActionRow, GpuCount, PoolRow, ServerRow, Snapshot, triton_key
from benchmarks.chaos.routers import ServiceFleet, Slot
from deploy.local import postgres
from deploy.local.common import StackPaths, pid_alive

log = logging.getLogger(__name__)

SERVER_PREFIX = "chaosalloc"
MODEL = "tinylm"
REGION = "us-east-1"
GPU_TYPE = "a100_80gb"
POOL = (6, 4, 1)  # total, available, reserved: one GPU is in use outside the allocator
MAX_SERVERS = 3
ALLOCATOR_METRICS_BASE_PORT = 19320
ALLOCATOR_TRITON_BASE_PORT = 18200  # away from the request path's Triton (18100) and the tests' (8100)
# What the allocator's reconciler reads (pydantic settings ignore the ones a version does not know).
RECONCILER = {
    "RECONCILE_INTERVAL_S": "5",
    "ACTION_TIMEOUT_S": "90",
    "ORPHAN_GRACE_S": "20",
    "DEAD_AFTER_S": "15",
}
SHM_ARG = b"--backend-config=python,shm-region-prefix-name=llmfleet_triton_"


def fleet_config() -> dict[str, Any]:
    """The allocator's fleet for a chaos run."""
    return {
        "gpu_types": {GPU_TYPE: {"memory_gb": 80, "on_demand_per_hour": 4.10, "relative_speed": 0.6}},
        "regions": {REGION: 1.0},
        "pools": {REGION: {GPU_TYPE: list(POOL)}},
        "models": {MODEL: {"preferred_gpu": GPU_TYPE, "instances_per_gpu": 1}},
    }


def allocator_settings(fleet_path: Path) -> dict[str, str]:
    """The allocator's own settings: the small fleet, local Triton servers, the reconciler's pace."""
    values = {
        "FLEET_CONFIG": str(fleet_path),
        "PROVISIONER": "local",
        "SERVER_PREFIX": SERVER_PREFIX,
        "MAX_SERVERS": str(MAX_SERVERS),
        "MAX_GPUS_PER_SERVER": "1",
        "TRITON_BASE_PORT": str(ALLOCATOR_TRITON_BASE_PORT),
        "RELAY_POLL_INTERVAL_S": "0.5",
        **RECONCILER,
    }
    return {f"LLMFLEET_ALLOCATOR_{k}": v for k, v in values.items()}


class AllocatorFleet(ServiceFleet):
    """The run's allocator processes: slot "a" always wanted, "b" the replica that joins and leaves."""

    service = "allocator"
    metrics_base_port = ALLOCATOR_METRICS_BASE_PORT

    def __init__(self, stack: dict[str, Any], paths: StackPaths, folder: Path) -> None:
        super().__init__(stack, paths)
        self.fleet_path = folder / "allocator-fleet.yaml"
        self.fleet_path.write_text(yaml.safe_dump(fleet_config(), sort_keys=False))

    def settings(self, slot: Slot) -> dict[str, str]:
        """The same settings for every replica (one consumer group)."""
        return allocator_settings(self.fleet_path)

    async def serving(self, name: str, timeout: float = 60.0) -> bool:
        """Until the replica's /ready answers 200 (started, broker connected)."""
        return await self.ready(name, timeout, path="/ready")


def triton_processes(run_dir: Path, prefix: str | None = SERVER_PREFIX) -> dict[int, str]:
    """Live `tritonserver` processes in the run's stack for servers named `prefix`-... (None: any): pid -> key."""
    wanted = "" if prefix is None else triton_key(prefix) + "_"
    run = str(run_dir.resolve())
    found: dict[int, str] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if not args or not args[0].endswith(b"tritonserver"):
                continue
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
        shm = next((a for a in args if a.startswith(SHM_ARG)), None)
        if shm is None or cwd != run:
            continue
        key = shm[len(SHM_ARG) :].decode(errors="replace").removesuffix("_")
        if key.startswith(wanted) and pid_alive(pid):
            found[pid] = key
    return found


def processes_in(folder: Path) -> list[int]:
    """Live processes (other than this one) working in `folder` or below: whatever a run's stack left running."""
    root = str(folder.resolve())
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = os.readlink(f"/proc/{entry.name}/cwd")
        except OSError:
            continue
        if (cwd == root or cwd.startswith(root + "/")) and pid_alive(int(entry.name)):
            found.append(int(entry.name))
    return sorted(found)


def stop_each(pids: list[int], timeout: float = 10.0) -> None:
    """SIGTERM each process by its own pid (a Python-backend stub outlives its server's process group), then
    SIGKILL the ones still there after `timeout`."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
        time.sleep(0.1)
    for pid in pids:
        if pid_alive(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def sweep(folder: Path) -> list[int]:
    """Stop, each by its pid, every process still working in `folder` (a run's stack, after its stop)."""
    left = processes_in(folder)
    stop_each(left)
    return left


class StateLock:
    """The run's stack state lock, held by the harness: the launcher waits in it before it spawns a server."""

    def __init__(self, paths: StackPaths) -> None:
        self._path = paths.run / "state.lock"
        self._file: IO[str] | None = None

    async def acquire(self, timeout: float = 10.0) -> bool:
        """Take the lock (polling, so the event loop goes on); False when another holder kept it."""
        handle = self._path.open("w")
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self._file = handle
                return True
            except BlockingIOError:
                if asyncio.get_running_loop().time() > deadline:
                    handle.close()
                    return False
                await asyncio.sleep(0.05)

    def release(self) -> None:
        """Let go (idempotent)."""
        if self._file is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None


SERVERS_SQL = "select server_id, state, action_id from allocator.server where server_id like $1"
ACTIONS_SQL = (
    "select action_id, state, extract(epoch from (now() - created_at))::float8 as age_s from allocator.scaling_action"
)
POOLS_SQL = "select region, gpu_type, total, available, reserved from allocator.gpu_pool"
GPUS_SQL = (
    "select region, gpu_type, state, server_id, count(*)::int as n from allocator.gpu group by region, gpu_type, "
    "state, server_id"
)
INSTANCES_SQL = (
    "select coalesce(sum(p.instances), 0)::int from allocator.placement p join allocator.server s using (server_id) "
    "where p.model_id = $1 and p.state <> 'unloading' and s.state in ('starting', 'running')"
)


class ControlProbe:
    """Reads the allocator's tables (one connection, reopened after PostgreSQL comes back); None while unreachable."""

    def __init__(self, stack: dict[str, Any]) -> None:
        self._dsn = postgres.database_url("allocator", stack["postgres"], driver="postgresql")
        self._conn: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()

    async def _connection(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            self._conn = await asyncpg.connect(self._dsn, timeout=3, command_timeout=5)
        return self._conn

    async def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._conn.close(), 2)
        self._conn = None

    async def _fetch(self, sql: str, *args: Any) -> list[asyncpg.Record] | None:
        async with self._lock:
            try:
                conn = await self._connection()
                return list(await conn.fetch(sql, *args))
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as error:
                log.debug("probe: %r", error)
                await self._drop()
                return None

    async def servers(self) -> list[ServerRow] | None:
        """The allocator's servers (of its prefix)."""
        rows = await self._fetch(SERVERS_SQL, f"{SERVER_PREFIX}-%")
        return None if rows is None else [ServerRow(r["server_id"], r["state"], r["action_id"]) for r in rows]

    async def action_state(self, action_id: str) -> str | None:
        """The action's state ("" when it has no row yet; None when the database cannot be read)."""
        rows = await self._fetch("select state from allocator.scaling_action where action_id = $1", action_id)
        return None if rows is None else (rows[0]["state"] if rows else "")

    async def instances(self, model_id: str) -> int | None:
        """Instances of the model on servers starting or running (not being unloaded)."""
        rows = await self._fetch(INSTANCES_SQL, model_id)
        return None if rows is None else int(rows[0][0])

    async def snapshot(self) -> Snapshot | None:
        """Servers, actions, pools and GPU counts, read in one repeatable-read transaction."""
        async with self._lock:
            try:
                conn = await self._connection()
                async with conn.transaction(isolation="repeatable_read", readonly=True):
                    servers = await conn.fetch(SERVERS_SQL, f"{SERVER_PREFIX}-%")
                    actions = await conn.fetch(ACTIONS_SQL)
                    pools = await conn.fetch(POOLS_SQL)
                    gpus = await conn.fetch(GPUS_SQL)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as error:
                log.debug("snapshot: %r", error)
                await self._drop()
                return None
        return Snapshot(
            servers=tuple(ServerRow(r["server_id"], r["state"], r["action_id"]) for r in servers),
            actions=tuple(ActionRow(r["action_id"], r["state"], float(r["age_s"])) for r in actions),
            pools=tuple(PoolRow(r["region"], r["gpu_type"], r["total"], r["available"], r["reserved"]) for r in pools),
            gpus=tuple(GpuCount(r["region"], r["gpu_type"], r["state"], r["server_id"], r["n"]) for r in gpus),
        )

    async def close(self) -> None:
        """Close the connection."""
        async with self._lock:
            await self._drop()
