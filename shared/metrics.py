"""Prometheus metrics of a service: one registry per app, served on the settings' metrics port.

Each service builds its own `CollectorRegistry` in `create_app` (never the process-global one),
so tests can run several apps in one process. Metric names are `llmfleet_<service>_<what>`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from threading import Thread
from typing import Any
from wsgiref.simple_server import WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app, start_http_server
from prometheus_client.exposition import ThreadingWSGIServer, _SilentHandler

Liveness = Callable[[], tuple[bool, str]]


def new_registry() -> CollectorRegistry:
    """A registry of the app's own metrics (no process or platform collectors)."""
    return CollectorRegistry(auto_describe=True)


def with_liveness(metrics_app: Any, live: Liveness) -> Any:
    """A WSGI app answering /live from `live()` (200 or 503, with its reason) and the rest as metrics."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/live":
            ok, reason = live()
            start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "text/plain")])
            return [reason.encode()]
        result: Iterable[bytes] = metrics_app(environ, start_response)
        return result

    return app


def serve_metrics(
    registry: CollectorRegistry, port: int, host: str = "127.0.0.1", live: Liveness | None = None
) -> tuple[WSGIServer, Thread] | None:
    """Serve `registry` at http://host:port/metrics (and `live` at /live); nothing when port is 0 (off)."""
    if port == 0:
        return None
    if live is None:
        return start_http_server(port, addr=host, registry=registry)
    server = make_server(host, port, with_liveness(make_wsgi_app(registry), live), ThreadingWSGIServer, _SilentHandler)
    thread = Thread(target=server.serve_forever, daemon=True, name="metrics")
    thread.start()
    return server, thread
