"""Prometheus metrics of a service, and its health endpoints, served on the settings' metrics port.

Each service builds its own `CollectorRegistry` in `create_app` (never the process-global one),
so tests can run several apps in one process. Metric names are `llmfleet_<service>_<what>`.

Next to `/metrics` the same port answers the probes, each 200 or 503 with a one-line reason:
`/health` (the process is up: always 200 while the server runs), `/ready` (its dependencies
answer: the app started, the broker connected) and, where a service has one, `/live`. Checks run
in the server's thread on every probe: keep them cheap (read a flag, never do I/O).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from threading import Thread
from typing import Any
from wsgiref.simple_server import WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer, _SilentHandler

Check = Callable[[], tuple[bool, str]]
Liveness = Check  # the router's name for its /live check


def new_registry() -> CollectorRegistry:
    """A registry of the app's own metrics (no process or platform collectors)."""
    return CollectorRegistry(auto_describe=True)


def process_up() -> tuple[bool, str]:
    """The /health check: answering at all means the process is up."""
    return True, "up"


def with_checks(metrics_app: Any, checks: Mapping[str, Check]) -> Any:
    """A WSGI app answering each path of `checks` from its check (200 or 503, with its reason), the rest as metrics."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        check = checks.get(environ.get("PATH_INFO", ""))
        if check is None:
            result: Iterable[bytes] = metrics_app(environ, start_response)
            return result
        try:
            ok, reason = check()
        except Exception as error:  # a broken check is a failed probe, not a dead server
            ok, reason = False, f"check failed: {error!r}"
        start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "text/plain")])
        return [reason.encode()]

    return app


def with_liveness(metrics_app: Any, live: Liveness) -> Any:
    """A WSGI app answering /live from `live()` and the rest as metrics."""
    return with_checks(metrics_app, {"/live": live})


def serve_metrics(
    registry: CollectorRegistry,
    port: int,
    host: str = "127.0.0.1",
    live: Liveness | None = None,
    ready: Check | None = None,
) -> tuple[WSGIServer, Thread] | None:
    """Serve `registry` at http://host:port/metrics with /health, /ready (and /live); nothing when port is 0 (off).

    Without a `ready` check the service counts as ready once it serves (it serves after starting);
    with `live` and no `ready`, ready means live.
    """
    if port == 0:
        return None
    checks: dict[str, Check] = {"/health": process_up, "/ready": ready or live or process_up}
    if live is not None:
        checks["/live"] = live
    server = make_server(host, port, with_checks(make_wsgi_app(registry), checks), ThreadingWSGIServer, _SilentHandler)
    thread = Thread(target=server.serve_forever, daemon=True, name="metrics")
    thread.start()
    return server, thread
