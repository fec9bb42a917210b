"""Process, port and state helpers shared by the local stack's components.

Every component records what it started in one JSON state file, so that `down` and `status`
work from any shell and a second `up` reuses what is already running (idempotent).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class StackPaths:
    """Where the stack keeps downloads (reused across runs) and runtime state (data, logs)."""

    cache: Path
    run: Path

    @property
    def logs(self) -> Path:
        return self.run / "logs"

    @property
    def state_file(self) -> Path:
        return self.run / "state.json"


def stack_paths() -> StackPaths:
    """Paths from LLMFLEET_CACHE / LLMFLEET_RUN_DIR, defaulting to `.cache/` in the repo."""
    cache = Path(os.environ.get("LLMFLEET_CACHE", REPO_ROOT / ".cache")).resolve()
    run = Path(os.environ.get("LLMFLEET_RUN_DIR", cache / "stack")).resolve()
    for folder in (cache, run, run / "logs"):
        folder.mkdir(parents=True, exist_ok=True)
    return StackPaths(cache=cache, run=run)


def port_is_free(port: int) -> bool:
    """True when nothing listens on 127.0.0.1:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port(preferred: int, taken: Sequence[int] = ()) -> int:
    """The preferred port when free, else the next free one above it (skipping `taken`)."""
    for port in range(preferred, preferred + 2000):
        if port not in taken and port_is_free(port):
            return port
    raise RuntimeError(f"no free port found from {preferred}")


def tcp_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """True when something accepts a TCP connection on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(check: Callable[[], bool], timeout: float, what: str, log: Path | None = None) -> None:
    """Poll `check` until it is true; on timeout raise with the tail of the log to explain why."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    tail = ""
    if log is not None and log.exists():
        last_lines = log.read_text(errors="replace").splitlines()[-30:]
        tail = f"\n--- last lines of {log} ---\n" + "\n".join(last_lines)
    raise TimeoutError(f"{what} not ready after {timeout:.0f}s{tail}")


def spawn(cmd: Sequence[str], log: Path, env: Mapping[str, str] | None = None, cwd: Path | None = None) -> int:
    """Start a long-running process in its own session, output appended to `log`; return its pid."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            list(cmd),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,
        )
    return proc.pid


def pid_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] != "Z":
            return True
        # A JVM's main thread can exit first: the leader shows as a zombie while its other
        # threads still run and hold the listening sockets.
        return len(list(Path(f"/proc/{pid}/task").iterdir())) > 1
    return True


def stop_pid(pid: int, timeout: float = 20.0, sig: signal.Signals = signal.SIGTERM) -> None:
    """Send `sig` to the process group that `spawn` created for pid, then SIGKILL after `timeout`."""
    if not pid_alive(pid):
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)
    if not _gone_within(pid, timeout):
        kill_pid(pid)


def kill_pid(pid: int, timeout: float = 15.0) -> None:
    """SIGKILL the process group that `spawn` created for pid (a crash), and wait until it is gone."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    _gone_within(pid, timeout)


def _gone_within(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(pid)
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return False


def wait_released(pid: int, ports: Sequence[int], timeout: float = 15.0) -> None:
    """Wait until the process is gone and its ports can be bound again.

    A JVM's main thread turns zombie (so `pid_alive` may say no) while other threads that hold
    the listening sockets are still exiting; a quick restart would then miss its port.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(pid)
        if not pid_alive(pid) and all(port_is_free(port) for port in ports):
            return
        time.sleep(0.1)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


@contextlib.contextmanager
def locked_state(paths: StackPaths) -> Iterator[dict[str, Any]]:
    """Read-modify-write the state file under an exclusive lock (two `up`s never race)."""
    lock_path = paths.run / "state.lock"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        state: dict[str, Any] = {}
        if paths.state_file.exists():
            state = json.loads(paths.state_file.read_text() or "{}")
        yield state
        tmp = paths.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2, sort_keys=True))
        tmp.replace(paths.state_file)


def read_state(paths: StackPaths) -> dict[str, Any]:
    """The state file's content, without locking (for status displays)."""
    if not paths.state_file.exists():
        return {}
    return dict(json.loads(paths.state_file.read_text() or "{}"))
