"""Prometheus metrics of a service: one registry per app, served on the settings' metrics port.

Each service builds its own `CollectorRegistry` in `create_app` (never the process-global one),
so tests can run several apps in one process. Metric names are `llmfleet_<service>_<what>`.
"""

from __future__ import annotations

from threading import Thread
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server


def new_registry() -> CollectorRegistry:
    """A registry of the app's own metrics (no process or platform collectors)."""
    return CollectorRegistry(auto_describe=True)


def serve_metrics(registry: CollectorRegistry, port: int, host: str = "127.0.0.1") -> tuple[WSGIServer, Thread] | None:
    """Serve `registry` at http://host:port/metrics; nothing when port is 0 (off)."""
    if port == 0:
        return None
    return start_http_server(port, addr=host, registry=registry)
