"""Service processes of the run (routers, and the control path's allocators): started as
deploy/local/services.py starts them, killed and restarted by pid.

A small supervisor stands in for the process manager of a real deployment: a service that exits on
its own is counted and started again (with a backoff). It also samples every process's VmRSS.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deploy.local import services
from deploy.local.common import REPO_ROOT, StackPaths, free_port, port_is_free

GROUP_PREFIX = "chaos"
OVERLOAD_MODELS = 200
METRICS_BASE_PORT = 19300


def router_settings(triton_endpoint: str, instance_id: str) -> dict[str, str]:
    """The router's settings: one static Triton server (no allocator), tracing off, no cold starts."""
    models = {"echo": "echo", "tinylm": "tinylm"} | {f"chaos-m{i:03d}": "echo" for i in range(OVERLOAD_MODELS)}
    server = {
        "server_id": "chaos-triton-0",
        "endpoint": triton_endpoint,
        "region": "us-east-1",
        "gpu_type": "h100_80gb",
        "cost_per_hour": 2.0,
        "capacity": 8,
        "models": models,
    }
    values = {
        "INSTANCE_ID": instance_id,
        "STATIC_SERVERS": json.dumps([server]),
        "FOLLOW_ALLOCATIONS": "false",
        "COLD_START_MODELS": "[]",
        "TRACE_ROOT_RATIO": "0.0",  # spans cost CPU on a 2-core machine and nothing exports them here
    }
    return {f"LLMFLEET_ROUTER_{k}": v for k, v in values.items()}


@dataclass
class Slot:
    """One replica: wanted or not, under a fault's hands or not, its current process."""

    name: str
    desired: bool = False
    busy: bool = False
    process: subprocess.Popen[bytes] | None = None
    metrics_port: int = 0
    started_at: float = 0.0
    failures: int = 0
    pids: list[int] = field(default_factory=list)

    def alive(self) -> bool:
        """True while its process runs."""
        return self.process is not None and self.process.poll() is None


class ServiceFleet:
    """Replicas of one service (`python -m services.<service>`), slot "a" the usual one, "b" one that joins."""

    service = ""
    metrics_base_port = METRICS_BASE_PORT

    def __init__(self, stack: Mapping[str, Any], paths: StackPaths) -> None:
        self._stack, self._paths = stack, paths
        self.slots = {name: Slot(name) for name in ("a", "b")}
        self.unexpected_exits: list[dict[str, Any]] = []
        self.max_rss_mb = 0.0
        self.t0 = time.monotonic()

    def settings(self, slot: Slot) -> dict[str, str]:
        """The service's own `LLMFLEET_<SERVICE>_*` settings for a slot."""
        raise NotImplementedError

    def _env(self, slot: Slot) -> dict[str, str]:
        env = services.service_env(self.service, self._stack, GROUP_PREFIX, slot.metrics_port, self.settings(slot))
        env |= {"LLMFLEET_RUN_DIR": str(self._paths.run), "LLMFLEET_CACHE": str(self._paths.cache)}
        return {**os.environ, **env}

    def migrate(self) -> None:
        """Run the service's migration job once (services do not migrate at start)."""
        env = self._env(self.slots["a"])
        log = self._paths.logs / f"{self.service}-migrate.log"
        with log.open("ab") as out:
            subprocess.run(  # noqa: S603 - this interpreter, one of our own modules
                [sys.executable, "-m", f"services.{self.service}", "migrate"],
                stdout=out,
                stderr=out,
                env=env,
                check=True,
                cwd=REPO_ROOT,
            )

    def spawn(self, name: str) -> int:
        """Start the slot's process now (same command, environment and session as `services.start`)."""
        slot = self.slots[name]
        slot.desired = True
        if not slot.metrics_port or not port_is_free(slot.metrics_port):
            slot.metrics_port = free_port(self.metrics_base_port + ord(name) - ord("a"))
        log = self._paths.logs / f"{self.service}-{name}.log"
        with log.open("ab") as out:
            slot.process = subprocess.Popen(  # noqa: S603 - this interpreter, one of our own modules
                [sys.executable, "-m", f"services.{self.service}"],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self._env(slot),
                cwd=REPO_ROOT,
                start_new_session=True,
            )
        slot.started_at = time.monotonic()
        slot.pids.append(slot.process.pid)
        return slot.process.pid

    async def ready(self, name: str, timeout: float = 90.0, path: str = "/metrics") -> bool:
        """Wait until the slot's process answers `path` with 200 (it has started); False if it died."""
        slot = self.slots[name]
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{slot.metrics_port}{path}"
        while time.monotonic() < deadline and slot.alive():
            if await asyncio.to_thread(_answers, url):
                return True
            await asyncio.sleep(0.5)
        return False

    def kill(self, name: str) -> bool:
        """SIGKILL the slot's process group and reap it; True when it was running."""
        slot = self.slots[name]
        if slot.process is None or not slot.alive():
            return False
        with contextlib.suppress(ProcessLookupError):
            os.killpg(slot.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            slot.process.wait(timeout=15)
        return True

    async def terminate(self, name: str, timeout: float = services.STOP_TIMEOUT) -> bool:
        """SIGTERM the slot's process group, SIGKILL after `timeout`; True if it stopped by itself."""
        slot = self.slots[name]
        slot.desired = False
        process = slot.process
        if process is None or process.poll() is not None:
            return True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            await asyncio.to_thread(process.wait, timeout)
            return True
        except subprocess.TimeoutExpired:
            self.kill(name)
            return False

    async def supervise(self, stop: asyncio.Event) -> None:
        """Once a second: sample RSS; restart a wanted process that exited by itself (counted), with backoff."""
        while not stop.is_set():
            for slot in self.slots.values():
                if slot.alive() and slot.process is not None:
                    self.max_rss_mb = max(self.max_rss_mb, _rss_mb(slot.process.pid))
                    if time.monotonic() - slot.started_at > 30:
                        slot.failures = 0
                    continue
                if not slot.desired or slot.busy or slot.process is None:
                    continue
                backoff = min(2.0 * 2**slot.failures, 16.0)
                if time.monotonic() - slot.started_at < backoff:
                    continue
                rc = slot.process.poll()
                at = round(time.monotonic() - self.t0, 1)
                self.unexpected_exits.append({self.service: slot.name, "rc": rc, "at_s": at})
                print(f"[{at:7.1f}s] {self.service} {slot.name} exited by itself (rc {rc}); restarting it", flush=True)
                slot.failures += 1
                self.spawn(slot.name)
            await asyncio.sleep(1.0)

    async def stop_all(self, timeout: float = services.STOP_TIMEOUT) -> None:
        """SIGTERM every process of this fleet (by pid), SIGKILL the ones still running after the timeout."""
        await asyncio.gather(*(self.terminate(name, timeout) for name in self.slots))


class RouterFleet(ServiceFleet):
    """The run's router processes (slot "a" always wanted, "b" the replica that joins and leaves)."""

    service = "router"

    def __init__(self, stack: Mapping[str, Any], paths: StackPaths, triton_endpoint: str) -> None:
        super().__init__(stack, paths)
        self._endpoint = triton_endpoint

    def settings(self, slot: Slot) -> dict[str, str]:
        """One static Triton server, tracing off, no cold starts."""
        return router_settings(self._endpoint, f"chaos-{slot.name}")


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - our own localhost URL
            return bool(response.status == 200)
    except OSError:
        return False


def _rss_mb(pid: int) -> float:
    """VmRSS of a process in MB (0 when it is gone)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0
