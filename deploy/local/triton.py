"""Triton Inference Server processes on 127.0.0.1, each one emulating one GPU of the fleet.

The `nvidia-pytriton` wheel ships a real `tritonserver` binary (Triton 2.51) and its Python
backend, which run on a CPU-only machine. The wheel is installed once into the cache, apart from
the project's environment (its pins clash with ours); the Python backend runs the models in
`deploy/triton/models` with this interpreter in a small venv of its own holding numpy 1.x (the
stubs need it). Servers start in EXPLICIT model-control mode, so the fleet loads and unloads
models through Triton's repository API like in production.

A server is told which GPU it stands for through LLMFLEET_GPU_* variables; the models read them
(tinylm slows itself down by 1/relative_speed). Every server is recorded under "triton" in the
stack's state file, so `status`, `stop_all` and a second `start_server` work from any shell.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploy.local.common import (
    REPO_ROOT,
    StackPaths,
    free_port,
    locked_state,
    pid_alive,
    port_is_free,
    read_state,
    spawn,
    stack_paths,
    stop_pid,
    wait_until,
)

PYTRITON_VERSION = "0.7.0"  # bundles tritonserver 2.51 with the Python backend
STUB_NUMPY = "1.26.4"  # the Python backend stubs of Triton 2.51 need numpy 1.x (see _create_stub_env)
MODEL_REPOSITORY = REPO_ROOT / "deploy/triton/models"
READY_TIMEOUT = 120.0
EXIT_TIMEOUT_SECS = 5  # Triton's grace period for in-flight requests on SIGTERM (stop_pid waits 20 s)


@dataclass(frozen=True)
class GpuProfile:
    """The GPU a Triton server pretends to be: its type, memory and speed relative to the reference."""

    gpu_type: str
    memory_gb: int
    relative_speed: float


# Speeds are relative to an H100 (1.0), roughly from dense FP16 throughput and memory bandwidth
# for LLM decoding. The reference runs at this CPU's real speed: a model cannot be made faster
# than the machine it runs on, so every other profile is emulated by slowing down (sleeping).
PROFILES: dict[str, GpuProfile] = {
    "h100_80gb": GpuProfile("h100_80gb", 80, 1.0),
    "a100_80gb": GpuProfile("a100_80gb", 80, 0.6),
    "a100_40gb": GpuProfile("a100_40gb", 40, 0.55),
    "l4_24gb": GpuProfile("l4_24gb", 24, 0.25),
    "v100_32gb": GpuProfile("v100_32gb", 32, 0.35),
    "t4_16gb": GpuProfile("t4_16gb", 16, 0.15),
}


def _pytriton_root(paths: StackPaths) -> Path:
    return paths.cache / "pytriton"


def _server_libs(paths: StackPaths) -> Path:
    return _pytriton_root(paths) / "nvidia_pytriton.libs"


def _backends_dir(paths: StackPaths) -> Path:
    return paths.cache / "triton-backends"


def _pip_command() -> list[str]:
    """A pip that can install for this interpreter's Python version (the venv may lack pip)."""
    if importlib.util.find_spec("pip") is not None:
        return [sys.executable, "-m", "pip"]
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    for name in (f"python{version}", "python3"):
        python = shutil.which(name)
        if python is None:
            continue
        probe = subprocess.run(
            [python, "-c", "import sys, pip; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.returncode == 0 and probe.stdout.strip() == version:
            return [python, "-m", "pip"]
    uv = shutil.which("uv")
    if uv is not None:
        return [uv, "pip"]
    raise RuntimeError(f"no pip for Python {version} found (tried this interpreter, python{version}, python3, uv)")


def ensure_installed(paths: StackPaths | None = None) -> Path:
    """Install nvidia-pytriton and the backend's Python env into the cache once; return tritonserver."""
    paths = paths or stack_paths()
    root, env = _pytriton_root(paths), _stub_env(paths)
    markers = (root / f".installed-{PYTRITON_VERSION}", env / f".installed-numpy-{STUB_NUMPY}")
    if not all(marker.exists() for marker in markers):
        with (paths.cache / "pytriton.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # two installs at once: the second waits, then reuses
            if not markers[0].exists():
                _install(root, paths.cache / "pytriton.partial", "pytriton/tritonserver/bin/tritonserver")
                markers[0].write_text(f"nvidia-pytriton=={PYTRITON_VERSION}\n")
            if not markers[1].exists():
                _create_stub_env(env, paths.cache / f"{env.name}.partial")
                markers[1].write_text(f"numpy=={STUB_NUMPY}\n")
    _assemble_backends(root, paths)
    return root / "pytriton/tritonserver/bin/tritonserver"


def _stub_env(paths: StackPaths) -> Path:
    return paths.cache / f"triton-python{sys.version_info.major}.{sys.version_info.minor}"


def _pip_install(requirement: str, target: Path) -> None:
    """pip install --no-deps --target: a package for this Python version, outside the project env."""
    pip = _pip_command()
    cmd = [*pip, "install", "--no-deps", "--target", str(target), requirement]
    if Path(pip[0]).name == "uv":
        cmd += ["--python", sys.executable]
    print(f"llmfleet: installing {requirement} into {target} ...", file=sys.stderr, flush=True)
    started = time.monotonic()
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"installing {requirement} failed ({' '.join(cmd)}):\n{result.stdout}{result.stderr}")
    print(f"llmfleet: {requirement} installed in {time.monotonic() - started:.1f}s", file=sys.stderr, flush=True)


def _install(root: Path, staging: Path, expected: str) -> None:
    """The wheel, with tritonserver, its libraries, the Python backend and its stubs (~55 MB)."""
    shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(root, ignore_errors=True)
    _pip_install(f"nvidia-pytriton=={PYTRITON_VERSION}", staging)
    if not (staging / expected).exists():
        raise RuntimeError(f"nvidia-pytriton {PYTRITON_VERSION} installed without {expected}")
    staging.rename(root)


def _create_stub_env(env: Path, staging: Path) -> None:
    """A venv of this interpreter holding numpy 1.x, the Python the backend stubs run models in.

    The stubs of Triton 2.51 are built against numpy 1.x; with the project's numpy 2 they read
    every BYTES tensor as garbage (and crash). So models get their own small environment.
    """
    shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(env, ignore_errors=True)
    result = subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(staging)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"creating the Triton Python env failed:\n{result.stdout}{result.stderr}")
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    _pip_install(f"numpy=={STUB_NUMPY}", staging / "lib" / version / "site-packages")
    staging.rename(env)


def _assemble_backends(root: Path, paths: StackPaths) -> None:
    """backends/python/ = the wheel's Python backend plus the stub built for this Python version."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    dist = root / "pytriton/tritonserver"
    stub = dist / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.exists():
        raise RuntimeError(f"nvidia-pytriton {PYTRITON_VERSION} has no Python backend stub for Python {version}")
    python_dir = _backends_dir(paths) / "python"
    python_dir.mkdir(parents=True, exist_ok=True)
    wanted = {
        "libtriton_python.so": dist / "backends/python/libtriton_python.so",
        "triton_python_backend_utils.py": dist / "backends/python/triton_python_backend_utils.py",
        "triton_python_backend_stub": stub,
    }
    for name, source in wanted.items():
        link = python_dir / name
        if link.is_symlink() and link.resolve() == source.resolve():
            continue
        tmp = python_dir / f".{name}.{os.getpid()}"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(source)
        tmp.replace(link)  # atomic: a server starting meanwhile sees the old or the new link


def _server_env(paths: StackPaths, profile: GpuProfile) -> dict[str, str]:
    """Environment for tritonserver and the Python backend stubs it starts."""
    # The stub links libpython3.11.so: it must be this interpreter's (pyenv's), not the system's,
    # or the stdlib and the library disagree. The wheel's lib folder is listed too, so that the
    # symlinked backend library does not depend on resolving its $ORIGIN rpath.
    libdirs = [str(sysconfig.get_config_var("LIBDIR")), str(_server_libs(paths))]
    if os.environ.get("LD_LIBRARY_PATH"):
        libdirs.append(os.environ["LD_LIBRARY_PATH"])
    # The stub's Python runs isolated (PYTHONPATH is ignored) and finds its prefix by looking up
    # `python3` on PATH: the stub env's bin folder first makes it use that venv (and its numpy).
    path = [str(_stub_env(paths) / "bin"), os.environ.get("PATH", "/usr/bin:/bin")]
    env = {
        "LD_LIBRARY_PATH": ":".join(libdirs),
        "PATH": ":".join(path),
        # One BLAS thread per server: several servers share a few cores; threads would thrash.
        "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS", "1"),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
        "LLMFLEET_GPU_TYPE": profile.gpu_type,
        "LLMFLEET_GPU_MEMORY_GB": str(profile.memory_gb),
        "LLMFLEET_GPU_SPEED": str(profile.relative_speed),
    }
    coretype = _openblas_coretype()
    if coretype and "OPENBLAS_CORETYPE" not in os.environ:
        env["OPENBLAS_CORETYPE"] = coretype
    return env


def _openblas_coretype() -> str | None:
    """The OpenBLAS kernel family this CPU supports, from its flags (None: let OpenBLAS decide)."""
    # numpy 1.26's OpenBLAS (0.3.23) does not recognise some recent or virtualised CPUs and then
    # falls back to its slowest (Prescott) kernels: tinylm ran 2-3x slower on this dev machine.
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags:
                    return "SkylakeX"
                if {"avx2", "fma"} <= flags:
                    return "Haswell"
                break
    return None  # OpenBLAS detects the CPU itself


def _shm_prefix(name: str) -> str:
    return "llmfleet_triton_" + re.sub(r"[^A-Za-z0-9]", "_", name) + "_"


def _command(binary: Path, paths: StackPaths, name: str, ports: tuple[int, int, int]) -> list[str]:
    http, grpc, metrics = ports
    return [
        str(binary),
        f"--model-repository={MODEL_REPOSITORY}",
        "--model-control-mode=explicit",
        f"--backend-directory={_backends_dir(paths)}",
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
    ]


def _base_url(http_url: str) -> str:
    return http_url if http_url.startswith(("http://", "https://")) else f"http://{http_url}"


def _request(http_url: str, path: str, method: str = "GET", timeout: float = 5.0) -> tuple[int, bytes]:
    """One HTTP call to Triton; (status, body), status 0 when the server cannot be reached."""
    data = b"" if method == "POST" else None
    req = urllib.request.Request(_base_url(http_url) + path, data=data, method=method)  # noqa: S310
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - local URL built here
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as err:
        return int(err.code), err.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


def server_ready(http_url: str) -> bool:
    """True when the server answers GET /v2/health/ready with 200."""
    return _request(http_url, "/v2/health/ready", timeout=2.0)[0] == 200


def model_ready(http_url: str, model: str) -> bool:
    """True when the model is loaded and ready on the server."""
    return _request(http_url, f"/v2/models/{model}/ready", timeout=2.0)[0] == 200


def load_model(http_url: str, model: str, timeout: float = READY_TIMEOUT) -> None:
    """Load a model from the repository (no-op when it is already ready); wait until it is ready."""
    if model_ready(http_url, model):
        return
    status, body = _request(http_url, f"/v2/repository/models/{model}/load", "POST", timeout=timeout)
    if status != 200:
        raise RuntimeError(f"loading {model} on {http_url} failed ({status}): {body.decode(errors='replace')}")
    wait_until(lambda: model_ready(http_url, model), timeout, f"model {model} on {http_url}")


def unload_model(http_url: str, model: str, timeout: float = 30.0) -> None:
    """Unload a model; wait until it has finished unloading (its instances are gone)."""
    status, body = _request(http_url, f"/v2/repository/models/{model}/unload", "POST", timeout=timeout)
    if status != 200:
        raise RuntimeError(f"unloading {model} on {http_url} failed ({status}): {body.decode(errors='replace')}")

    def unloaded() -> bool:
        states = {entry.get("state") for entry in repository_index(http_url) if entry.get("name") == model}
        return not states & {"READY", "LOADING", "UNLOADING"}

    wait_until(unloaded, timeout, f"unload of {model} on {http_url}")


def repository_index(http_url: str) -> list[dict[str, Any]]:
    """The repository's models with their state (READY, UNAVAILABLE, ...)."""
    status, body = _request(http_url, "/v2/repository/index", "POST")
    if status != 200:
        raise RuntimeError(f"repository index on {http_url} failed ({status}): {body.decode(errors='replace')}")
    return list(json.loads(body or b"[]"))


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
    name: str, profile: GpuProfile, models: Sequence[str] = (), paths: StackPaths | None = None, base_port: int = 8000
) -> dict[str, Any]:
    """Start (or reuse) the Triton server `name` emulating `profile`, load `models`; return its record."""
    paths = paths or stack_paths()
    binary = ensure_installed(paths)
    with locked_state(paths) as state:
        servers: dict[str, Any] = state.setdefault("triton", {})
        current = servers.get(name)
        reuse = current is not None and _ours(current)
        if current is not None and reuse:
            recorded = (current["gpu_type"], current["memory_gb"], current["relative_speed"])
            if recorded != (profile.gpu_type, profile.memory_gb, profile.relative_speed):
                raise ValueError(f"triton server {name} already runs as {recorded}; stop it first")
            info = dict(current)
        else:
            if current is not None:
                _cleanup_shm(name)  # a crashed server's Python-backend shared memory
            ports = _pick_ports(servers, name, base_port)
            log = paths.logs / f"triton-{name}.log"
            pid = spawn(_command(binary, paths, name, ports), log, env=_server_env(paths, profile), cwd=paths.run)
            info = {
                "name": name,
                "pid": pid,
                "http_url": f"127.0.0.1:{ports[0]}",
                "grpc_port": ports[1],
                "metrics_url": f"http://127.0.0.1:{ports[2]}/metrics",
                "gpu_type": profile.gpu_type,
                "memory_gb": profile.memory_gb,
                "relative_speed": profile.relative_speed,
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


def _wait_released(info: dict[str, Any], timeout: float = 15.0) -> None:
    """Wait until the process is gone and its ports can be bound again."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(int(info["pid"]), os.WNOHANG)
        if not pid_alive(int(info["pid"])) and all(port_is_free(p) for p in _ports(info)):
            return
        time.sleep(0.1)


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
    with contextlib.suppress(ProcessLookupError):
        os.killpg(int(info["pid"]), signal.SIGKILL)
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
