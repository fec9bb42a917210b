"""Installing Triton for the local stack: the nvidia-pytriton wheel, its backends, the stub env.

The `nvidia-pytriton` wheel ships a real `tritonserver` binary (Triton 2.51) and its Python
backend, which run on a CPU-only machine. The wheel is installed once into the cache, apart from
the project's environment (its pins clash with ours); the Python backend runs the models with this
interpreter in a small venv of its own holding numpy 1.x (the stubs need it). `server_env` is the
environment a server needs to find these pieces.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path
from typing import TYPE_CHECKING

from deploy.local.common import REPO_ROOT, StackPaths, stack_paths

if TYPE_CHECKING:
    from deploy.local.triton_emulation import Emulation, GpuProfile

PYTRITON_VERSION = "0.7.0"  # bundles tritonserver 2.51 with the Python backend
STUB_NUMPY = "1.26.4"  # the Python backend stubs of Triton 2.51 need numpy 1.x (see _create_stub_env)


def _pytriton_root(paths: StackPaths) -> Path:
    return paths.cache / "pytriton"


def _server_libs(paths: StackPaths) -> Path:
    return _pytriton_root(paths) / "nvidia_pytriton.libs"


def backends_dir(paths: StackPaths) -> Path:
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
    python_dir = backends_dir(paths) / "python"
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


def server_env(paths: StackPaths, profile: GpuProfile, emulation: Emulation) -> dict[str, str]:
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
        "LLMFLEET_EMULATED_QUANTISATION": emulation.quantisation,
        "LLMFLEET_EMULATED_TENSOR_PARALLEL": str(emulation.tensor_parallel),
        # tinylm imports shared.performance from here: the stub's Python ignores PYTHONPATH.
        "LLMFLEET_SOURCE_ROOT": str(REPO_ROOT),
    }
    if emulation.model is not None:
        env["LLMFLEET_EMULATED_MODEL"] = emulation.model
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
