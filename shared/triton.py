"""Triton's HTTP health and repository API: readiness checks, loading and unloading models.

Blocking calls over urllib (no client library: `tritonclient` pins clash with ours); async callers
run them in a thread. Used by the allocator's provisioners and by the local stack (deploy/local).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from shared.telemetry import inject_trace_headers

READY_TIMEOUT = 120.0


def poll_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `check` every 0.2 s until it is true; TimeoutError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise TimeoutError(f"{what} not ready after {timeout:.0f}s")


def _base_url(http_url: str) -> str:
    return http_url if http_url.startswith(("http://", "https://")) else f"http://{http_url}"


def _request(http_url: str, path: str, method: str = "GET", timeout: float = 5.0) -> tuple[int, bytes]:
    """One HTTP call to Triton; (status, body), status 0 when the server cannot be reached."""
    data = b"" if method == "POST" else None
    # The caller's trace context travels along: Triton's own tracing (when on) continues the trace
    # of the provisioning step that loads a model. Outside a trace no header is added.
    headers = inject_trace_headers()
    req = urllib.request.Request(_base_url(http_url) + path, data=data, method=method, headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - http(s) URL built here
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
    poll_until(lambda: model_ready(http_url, model), timeout, f"model {model} on {http_url}")


def unload_model(http_url: str, model: str, timeout: float = 30.0) -> None:
    """Unload a model; wait until it has finished unloading (its instances are gone)."""
    status, body = _request(http_url, f"/v2/repository/models/{model}/unload", "POST", timeout=timeout)
    if status != 200:
        raise RuntimeError(f"unloading {model} on {http_url} failed ({status}): {body.decode(errors='replace')}")

    def unloaded() -> bool:
        states = {entry.get("state") for entry in repository_index(http_url) if entry.get("name") == model}
        return not states & {"READY", "LOADING", "UNLOADING"}

    poll_until(unloaded, timeout, f"unload of {model} on {http_url}")


def repository_index(http_url: str) -> list[dict[str, Any]]:
    """The repository's models with their state (READY, UNAVAILABLE, ...)."""
    status, body = _request(http_url, "/v2/repository/index", "POST")
    if status != 200:
        raise RuntimeError(f"repository index on {http_url} failed ({status}): {body.decode(errors='replace')}")
    return list(json.loads(body or b"[]"))
