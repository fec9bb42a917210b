"""Triton Inference Server processes on 127.0.0.1, each one emulating one GPU of the fleet.

The `nvidia-pytriton` wheel ships a real `tritonserver` binary (Triton 2.51) and its Python
backend, which run on a CPU-only machine. The wheel is installed once into the cache, apart from
the project's environment (its pins clash with ours); the Python backend runs the models in
`deploy/triton/models` with this interpreter in a small venv of its own holding numpy 1.x (the
stubs need it). Servers start in EXPLICIT model-control mode, so the fleet loads and unloads
models through Triton's repository API like in production.

A server is told which GPU it stands for (LLMFLEET_GPU_*) and which model size it emulates
(LLMFLEET_EMULATED_*, an `Emulation`): tinylm then makes each batch last what the performance
model (`shared.performance`) says that batch takes on that GPU. Every server is recorded under
"triton" in the stack's state file, so `status`, `stop_all` and a second `start_server` work from
any shell.

Installing lives in `triton_install`, the HTTP repository API in `shared.triton` (which running
services use too); the names callers use from there are re-exported here. `python -m
deploy.local.triton start|stop` is how the allocator's local provisioner starts and stops servers
without importing the development stack.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from deploy.local.common import (
    REPO_ROOT,
    StackPaths,
    free_port,
    kill_pid,
    locked_state,
    pid_alive,
    port_is_free,
    read_state,
    spawn,
    stack_paths,
    stop_pid,
    wait_released,
    wait_until,
)
from deploy.local.triton_emulation import NO_EMULATION, PROFILES, Emulation, GpuProfile, identity, record
from deploy.local.triton_install import PYTRITON_VERSION, STUB_NUMPY, backends_dir, ensure_installed, server_env
from deploy.local.triton_tracing import trace_options
from shared.triton import READY_TIMEOUT, load_model, model_ready, repository_index, server_ready, unload_model

__all__ = [
    "EXIT_TIMEOUT_SECS",
    "MODEL_REPOSITORY",
    "NO_EMULATION",
    "PROFILES",
    "PYTRITON_VERSION",
    "READY_TIMEOUT",
    "STUB_NUMPY",
    "Emulation",
    "GpuProfile",
    "ensure_installed",
    "kill_server",
    "load_model",
    "model_ready",
    "repository_index",
    "server_ready",
    "start_server",
    "status",
    "stop_all",
    "stop_server",
    "unload_model",
]

MODEL_REPOSITORY = REPO_ROOT / "deploy/triton/models"
EXIT_TIMEOUT_SECS = 5  # Triton's grace period for in-flight requests on SIGTERM (stop_pid waits 20 s)


def _shm_prefix(name: str) -> str:
    return "llmfleet_triton_" + re.sub(r"[^A-Za-z0-9]", "_", name) + "_"


def _command(
    binary: Path, paths: StackPaths, name: str, ports: tuple[int, int, int], emulation: Emulation = NO_EMULATION
) -> list[str]:
    http, grpc, metrics = ports
    # A planned server loads each model's variant for its plan where the repository has one
    # (`<model>/configs/int8-tp2.pbtxt`), as a real LLM repository points each plan at its engine.
    variant = [f"--model-config-name={emulation.config_name}"] if emulation.config_name else []
    return [
        str(binary),
        *variant,
        f"--model-repository={MODEL_REPOSITORY}",
        "--model-control-mode=explicit",
        f"--backend-directory={backends_dir(paths)}",
        f"--backend-config=python,shm-region-prefix-name={_shm_prefix(name)}",
        "--http-address=127.0.0.1",
        f"--http-port={http}",
        "--grpc-address=127.0.0.1",
        f"--grpc-port={grpc}",
        "--metrics-address=127.0.0.1",
        f"--metrics-port={metrics}",
        "--allow-metrics=true",
        "--allow-gpu-metrics=false",
        "--metrics-interval-ms=1000",
        "--pinned-memory-pool-byte-size=0",
        f"--exit-timeout-secs={EXIT_TIMEOUT_SECS}",
        "--log-verbose=0",
        *trace_options(name),  # Triton's own spans, when the services export traces (deploy/local/triton_tracing.py)
    ]


def _ours(info: dict[str, Any]) -> bool:
    """True while the recorded pid is alive and still is this server (not a reused pid)."""
    pid = int(info["pid"])
    if not pid_alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    port_arg = f"--http-port={info['http_url'].rsplit(':', 1)[1]}".encode()
    return bool(cmdline) and cmdline[0].endswith(b"tritonserver") and port_arg in cmdline


def _ports(info: dict[str, Any]) -> tuple[int, int, int]:
    return (
        int(info["http_url"].rsplit(":", 1)[1]),
        int(info["grpc_port"]),
        int(info["metrics_url"].rsplit(":", 1)[1].split("/", 1)[0]),
    )


def _pick_ports(servers: dict[str, Any], name: str, base_port: int) -> tuple[int, int, int]:
    """Three free ports from base_port up, skipping other servers' ports; a dead server's own come first."""
    taken = [p for other, info in servers.items() if other != name for p in _ports(info)]
    previous = servers.get(name)
    if previous is not None:
        ports = _ports(previous)
        if all(port_is_free(p) and p not in taken for p in ports):
            return ports  # a restarted (e.g. killed) server comes back at the same address
    http = free_port(base_port, taken)
    grpc = free_port(http + 1, [*taken, http])
    metrics = free_port(grpc + 1, [*taken, http, grpc])
    return http, grpc, metrics


def start_server(
    name: str,
    profile: GpuProfile,
    models: Sequence[str] = (),
    paths: StackPaths | None = None,
    base_port: int = 8000,
    region: str = "local",
    emulation: Emulation = NO_EMULATION,
) -> dict[str, Any]:
    """Start (or reuse) the Triton server `name` standing for `profile` in `region`, load `models`.

    Its batches take the time `emulation`'s model takes on that GPU (see `Emulation`).
    """
    paths = paths or stack_paths()
    binary = ensure_installed(paths)
    with locked_state(paths) as state:
        servers: dict[str, Any] = state.setdefault("triton", {})
        current = servers.get(name)
        reuse = current is not None and _ours(current)
        if current is not None and reuse:
            recorded = identity(current)
            if recorded != identity(record(profile, emulation)):
                raise ValueError(f"triton server {name} already runs as {recorded}; stop it first")
            info = dict(current)
        else:
            if current is not None:
                _cleanup_shm(name)  # a crashed server's Python-backend shared memory
            ports = _pick_ports(servers, name, base_port)
            log = paths.logs / f"triton-{name}.log"
            env = server_env(paths, profile, emulation)
            pid = spawn(_command(binary, paths, name, ports, emulation), log, env=env, cwd=paths.run)
            info = {
                "name": name,
                "pid": pid,
                "http_url": f"127.0.0.1:{ports[0]}",
                "grpc_port": ports[1],
                "metrics_url": f"http://127.0.0.1:{ports[2]}/metrics",
                **record(profile, emulation),
                "region": region,
                "log": str(log),
            }
            servers[name] = info  # recorded at once: a parallel start picks other ports
    # Wait outside the lock, so that other servers and components can start meanwhile.
    log_path = Path(info["log"])
    try:
        wait_until(lambda: _ready_or_dead(info), READY_TIMEOUT, f"triton server {name}", log_path)
        if not pid_alive(int(info["pid"])):
            tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-30:])
            raise RuntimeError(f"triton server {name} exited during start; last lines of {log_path}:\n{tail}")
        for model in models:
            load_model(info["http_url"], model)
    except BaseException:
        if not reuse:
            stop_server(name, paths)
        raise
    return info


def _ready_or_dead(info: dict[str, Any]) -> bool:
    return server_ready(info["http_url"]) or not pid_alive(int(info["pid"]))


def _cleanup_shm(name: str) -> None:
    """Remove shared-memory regions that a killed server's Python backend left in /dev/shm."""
    for region in glob.glob(f"/dev/shm/{_shm_prefix(name)}*"):  # noqa: S108 - POSIX shm, names are ours
        with contextlib.suppress(OSError):
            os.unlink(region)


def _wait_released(info: dict[str, Any]) -> None:
    wait_released(int(info["pid"]), _ports(info))


def stop_server(name: str, paths: StackPaths | None = None) -> None:
    """Stop the server (SIGTERM to its process group, SIGKILL after 20 s) and forget it."""
    paths = paths or stack_paths()
    with locked_state(paths) as state:
        info = state.get("triton", {}).pop(name, None)
    if info is None:
        return
    if _ours(info):
        stop_pid(int(info["pid"]))
        _wait_released(info)
    _cleanup_shm(name)


def stop_all(paths: StackPaths | None = None) -> None:
    """Stop every recorded Triton server."""
    paths = paths or stack_paths()
    for name in list(read_state(paths).get("triton", {})):
        stop_server(name, paths)


def kill_server(name: str, paths: StackPaths | None = None) -> None:
    """SIGKILL the server's process group, as a crash would; the record stays, `start_server` restarts it."""
    paths = paths or stack_paths()
    info = read_state(paths).get("triton", {}).get(name)
    if info is None or not _ours(info):
        return
    kill_pid(int(info["pid"]))
    _wait_released(info)
    _cleanup_shm(name)


def status(paths: StackPaths | None = None) -> dict[str, dict[str, Any]]:
    """Every recorded server with "running" (process alive) and "ready" (HTTP ready) flags."""
    servers = read_state(paths or stack_paths()).get("triton", {})
    result: dict[str, dict[str, Any]] = {}
    for name, info in servers.items():
        running = _ours(info)
        result[name] = {**info, "running": running, "ready": running and server_ready(info["http_url"])}
    return result


USAGE = (
    "usage: python -m deploy.local.triton start NAME GPU_TYPE REGION BASE_PORT"
    " [--emulates=MODEL] [--quantisation=Q] [--tensor-parallel=N] | stop NAME | list"
)


def _emulation(options: Sequence[str]) -> Emulation:
    """`--emulates=M --quantisation=Q --tensor-parallel=N` (each optional) as an Emulation."""
    given = dict(option.removeprefix("--").split("=", 1) for option in options if option.startswith("--"))
    unknown = given.keys() - {"emulates", "quantisation", "tensor-parallel"}
    if unknown or len(given) != len(options):
        raise ValueError(f"unknown options {sorted(unknown) or list(options)}")
    return Emulation(given.get("emulates"), given.get("quantisation", "fp16"), int(given.get("tensor-parallel", 1)))


def main(argv: Sequence[str]) -> int:
    """`start NAME GPU_TYPE REGION BASE_PORT [options]`, `stop NAME` or `list`; answers one JSON line on stdout."""
    if len(argv) >= 5 and argv[0] == "start":
        name, gpu_type, region, base_port = argv[1:5]
        if gpu_type not in PROFILES:
            print(json.dumps({"error": f"no local emulation profile for GPU type {gpu_type}"}))
            return 1
        try:
            emulation = _emulation(argv[5:])
            info = start_server(name, PROFILES[gpu_type], region=region, base_port=int(base_port), emulation=emulation)
        except (RuntimeError, TimeoutError, OSError, ValueError) as error:
            print(json.dumps({"error": f"starting {name} failed: {error}"}))
            return 1
        print(json.dumps({"http_url": info["http_url"], "metrics_url": info["metrics_url"]}))
        return 0
    if argv == ["list"]:
        # What the allocator's reconciler compares its records with: every recorded server, alive or not.
        listed = {
            name: {key: info.get(key) for key in ("running", "ready", "http_url", "metrics_url", "region")}
            for name, info in status().items()
        }
        print(json.dumps({"servers": listed}))
        return 0
    if len(argv) == 2 and argv[0] == "stop":
        stop_server(argv[1])
        print(json.dumps({"stopped": argv[1]}))
        return 0
    print(json.dumps({"error": USAGE}))
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
