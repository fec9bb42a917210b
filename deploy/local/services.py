"""The six platform services as local processes (`python -m services.<name>`), recorded in the state file.

First each service's migration job runs (`python -m services.<name> migrate`, all at once, each
waited for), then the services start and run until SIGTERM; a service does not migrate at start.
The local stack's addresses and each service's own database role are passed as
`LLMFLEET_<SERVICE>_*` settings; a service gets a free port for its Prometheus `/metrics` and
its `/health` and `/ready` probes, and counts as started once `/ready` answers 200. The gateway
also gets a free port for its OpenAI API, recorded as `http_port` and `http_url` (the SDK's base URL).
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

from deploy.local import kafka, postgres
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

SERVICES: tuple[str, ...] = ("router", "allocator", "scaler", "cost", "monitor", "gateway")
METRICS_BASE_PORT = 9300
GATEWAY_HTTP_BASE_PORT = 8080  # the gateway's default http_port; the next free one when taken
READY_TIMEOUT = 90.0  # six services starting on a busy 2-core machine
MIGRATE_TIMEOUT = 120.0  # migrations of six schemas at once on the same machine
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
    # A secure stack: the service's own Kafka principal (its ACLs), and the CA for PostgreSQL's TLS.
    env.update(kafka.security_env(stack["kafka"], service, prefix))
    env.update(postgres.ssl_env(stack["postgres"]))
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
        taken = [int(port) for info in recorded.values() for port in _ports(info)]
        envs: dict[str, dict[str, str]] = {}
        for service in services:
            current = recorded.get(service)
            if current is not None and pid_alive(int(current["pid"])):
                started[service] = current
                continue
            envs[service] = _env(service, stack, group_prefix, settings or {}, paths, taken)
        migrate(envs, paths)
        for service, env in envs.items():
            log = paths.logs / f"{service}.log"
            pid = spawn([sys.executable, "-m", f"services.{service}"], log, env=env, cwd=REPO_ROOT)
            recorded[service] = started[service] = _record(service, env, pid, log)
    for service, info in started.items():
        wait_until(functools.partial(_serving, info), READY_TIMEOUT, f"service {service}", Path(info["log"]))
        if not pid_alive(int(info["pid"])):
            raise RuntimeError(f"service {service} exited during start-up; see {info['log']}")
    return started


def _env(
    service: str,
    stack: Mapping[str, Any],
    group_prefix: str,
    settings: Mapping[str, str],
    paths: StackPaths,
    taken: list[int],
) -> dict[str, str]:
    """A service's environment with free ports (added to `taken`): metrics, and the gateway's HTTP."""
    port = free_port(METRICS_BASE_PORT + SERVICES.index(service), taken)
    taken.append(port)
    env = service_env(service, stack, group_prefix, port, settings)
    env["LLMFLEET_RUN_DIR"] = str(paths.run)  # the allocator's Triton servers join this stack
    env["LLMFLEET_CACHE"] = str(paths.cache)
    if service == "gateway" and "LLMFLEET_GATEWAY_HTTP_PORT" not in env:
        http = free_port(GATEWAY_HTTP_BASE_PORT, taken)
        taken.append(http)
        env["LLMFLEET_GATEWAY_HTTP_PORT"] = str(http)
    return env


def _record(service: str, env: Mapping[str, str], pid: int, log: Path) -> dict[str, Any]:
    """What the state file keeps of a started service: pid, ports, URLs, log."""
    port = int(env[f"LLMFLEET_{service.upper()}_METRICS_PORT"])
    info: dict[str, Any] = {
        "pid": pid,
        "metrics_port": port,
        "metrics_url": f"http://127.0.0.1:{port}/metrics",
        "ready_url": f"http://127.0.0.1:{port}/ready",
        "log": str(log),
    }
    if http := env.get("LLMFLEET_GATEWAY_HTTP_PORT") if service == "gateway" else None:
        info |= {"http_port": int(http), "http_url": f"http://127.0.0.1:{http}/v1"}
    return info


def _ports(info: Mapping[str, Any]) -> list[Any]:
    """The ports a recorded service holds."""
    return [info[key] for key in ("metrics_port", "http_port") if key in info]


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

    The gateway goes first (its open calls still get their results from the router), then the
    router alone (it drains its open batches and commits), then the rest together.
    """
    paths = paths or stack_paths()
    with locked_state(paths) as state:
        recorded = state.pop("services", {})
    pids = {service: int(info["pid"]) for service, info in recorded.items()}
    clean: dict[str, bool] = {}
    for first in ("gateway", "router"):
        if first in pids:
            clean |= _stop_together({first: pids.pop(first)}, timeout)
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
