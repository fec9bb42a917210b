"""The five platform services as local processes (`python -m services.<name>`), recorded in the state file.

First each service's migration job runs (`python -m services.<name> migrate`, all at once, each
waited for), then the services start and run until SIGTERM; a service does not migrate at start.
The local stack's addresses and each service's own database role are passed as
`LLMFLEET_<SERVICE>_*` settings; a service gets a free port for its Prometheus `/metrics` and
its `/health` and `/ready` probes, and counts as started once `/ready` answers 200.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from deploy.local import postgres
from deploy.local.common import (
    REPO_ROOT,
    StackPaths,
    free_port,
    kill_pid,
    locked_state,
    pid_alive,
    read_state,
    spawn,
    stack_paths,
    wait_until,
)

SERVICES: tuple[str, ...] = ("router", "allocator", "scaler", "cost", "monitor")
METRICS_BASE_PORT = 9300
READY_TIMEOUT = 90.0  # five services starting on a busy 2-core machine
MIGRATE_TIMEOUT = 120.0  # migrations of five schemas at once on the same machine
STOP_TIMEOUT = 45.0  # the router drains open batches on SIGTERM


def service_env(
    service: str, stack: Mapping[str, Any], group_prefix: str, metrics_port: int, settings: Mapping[str, str]
) -> dict[str, str]:
    """The environment of one service: where Kafka and its database are, its group, its metrics port."""
    prefix = f"LLMFLEET_{service.upper()}_"
    env = {
        prefix + "KAFKA_BOOTSTRAP": stack["kafka"]["bootstrap"],
        prefix + "DATABASE_URL": postgres.database_url(service, stack["postgres"]),
        prefix + "CONSUMER_GROUP": f"{group_prefix}-{service}",
        prefix + "METRICS_PORT": str(metrics_port),
    }
    env.update({k: v for k, v in settings.items() if k.startswith(prefix)})
    return env


def start(
    stack: Mapping[str, Any],
    settings: Mapping[str, str] | None = None,
    group_prefix: str = "llmfleet",
    services: Sequence[str] = SERVICES,
    paths: StackPaths | None = None,
) -> dict[str, dict[str, Any]]:
    """Migrate, then start the services not running yet (idempotent); wait until each answers /ready."""
    paths = paths or stack_paths()
    started: dict[str, dict[str, Any]] = {}
    with locked_state(paths) as state:
        recorded: dict[str, Any] = state.setdefault("services", {})
        taken = [int(info["metrics_port"]) for info in recorded.values()]
        envs: dict[str, dict[str, str]] = {}
        for service in services:
            current = recorded.get(service)
            if current is not None and pid_alive(int(current["pid"])):
                started[service] = current
                continue
            port = free_port(METRICS_BASE_PORT + SERVICES.index(service), taken)
            taken.append(port)
            envs[service] = service_env(service, stack, group_prefix, port, settings or {})
            envs[service]["LLMFLEET_RUN_DIR"] = str(paths.run)  # the allocator's Triton servers join this stack
            envs[service]["LLMFLEET_CACHE"] = str(paths.cache)
        migrate(envs, paths)
        for service, env in envs.items():
            log = paths.logs / f"{service}.log"
            pid = spawn([sys.executable, "-m", f"services.{service}"], log, env=env, cwd=REPO_ROOT)
            port = int(env[f"LLMFLEET_{service.upper()}_METRICS_PORT"])
            recorded[service] = started[service] = {
                "pid": pid,
                "metrics_port": port,
                "metrics_url": f"http://127.0.0.1:{port}/metrics",
                "ready_url": f"http://127.0.0.1:{port}/ready",
                "log": str(log),
            }
    for service, info in started.items():
        wait_until(functools.partial(_serving, info), READY_TIMEOUT, f"service {service}", Path(info["log"]))
        if not pid_alive(int(info["pid"])):
            raise RuntimeError(f"service {service} exited during start-up; see {info['log']}")
    return started


def migrate(envs: Mapping[str, Mapping[str, str]], paths: StackPaths, timeout: float = MIGRATE_TIMEOUT) -> None:
    """Run each service's migration job (`python -m services.<name> migrate`) at once; wait for all to succeed."""
    jobs: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
    for service, env in envs.items():
        log = paths.logs / f"{service}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            jobs[service] = (
                subprocess.Popen(
                    [sys.executable, "-m", f"services.{service}", "migrate"],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env={**os.environ, **env},
                    cwd=REPO_ROOT,
                ),
                log,
            )
    deadline = time.monotonic() + timeout
    failed = []
    for service, (job, log) in jobs.items():
        try:
            code = job.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            job.kill()
            code = job.wait()
        if code != 0:
            failed.append(f"{service} (exit {code}; see {log})")
    if failed:
        raise RuntimeError(f"migrations failed: {', '.join(failed)}")


def _serving(info: Mapping[str, Any]) -> bool:
    """Ready once it answers /ready with 200 (started, broker connected), or dead."""
    if not pid_alive(int(info["pid"])):
        return True
    url = info.get("ready_url") or info["metrics_url"]  # a service recorded before /ready existed
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - our own localhost URL
            return bool(response.status == 200)
    except OSError:  # also HTTPError: 503 while it starts
        return False


def stop(paths: StackPaths | None = None, timeout: float = STOP_TIMEOUT) -> dict[str, bool]:
    """SIGTERM every recorded service (SIGKILL after `timeout`); say which stopped by themselves.

    The router goes first and alone (it drains its open batches and commits); the rest together.
    """
    paths = paths or stack_paths()
    with locked_state(paths) as state:
        recorded = state.pop("services", {})
    pids = {service: int(info["pid"]) for service, info in recorded.items()}
    clean: dict[str, bool] = {}
    if "router" in pids:
        clean |= _stop_together({"router": pids.pop("router")}, timeout)
    return clean | _stop_together(pids, timeout)


def _stop_together(pids: Mapping[str, int], timeout: float) -> dict[str, bool]:
    """SIGTERM all, wait for all, SIGKILL the late: True for each that stopped by itself."""
    for pid in pids.values():
        if pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(pid_alive(pid) for pid in pids.values()):
        for pid in pids.values():
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)
        time.sleep(0.1)
    clean = {service: not pid_alive(pid) for service, pid in pids.items()}
    for service, pid in pids.items():
        if not clean[service]:
            kill_pid(pid)
    return clean


def status(paths: StackPaths | None = None) -> dict[str, dict[str, Any]]:
    """Every recorded service with a "running" flag."""
    recorded = read_state(paths or stack_paths()).get("services", {})
    return {name: {**info, "running": pid_alive(int(info["pid"]))} for name, info in recorded.items()}
