"""Which platform the CLI talks to: global options, a named context, or the local stack's state file.

`llmfleet --bootstrap ... --database-url ... --metrics ... status` (or the `LLMFLEET_BOOTSTRAP`,
`LLMFLEET_DATABASE_URL`, `LLMFLEET_METRICS` variables, or `--context NAME` / `LLMFLEET_CONTEXT` with
a contexts file) points `status`, `replay`, `cost` and `keys` at any deployment: Compose,
Kubernetes (through port-forwards or from a pod), or the local stack. With none of them given, the
local stack's state file says where everything is, as before.

A database URL may name the role with `{service}` (each service has its own role and schema:
`postgresql+asyncpg://{service}:secret-{service}@db:5432/llmfleet`); without it the one URL serves
every service (a role that may read all the schemas). `LLMFLEET_<SERVICE>_DATABASE_URL` (what the
service itself reads) or a context's `database-urls` gives one role its own URL.

Metrics are base URLs of the services' metrics ports (where /metrics, /health and /ready are):
`http://{service}:9100` (one template, e.g. Kubernetes or Compose service names), or
`router=http://127.0.0.1:9101` per service (repeat the option or separate with commas).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SERVICES = ("router", "allocator", "scaler", "cost", "monitor", "gateway")
CONFIG_ENV = "LLMFLEET_CONFIG"
DEFAULT_CONFIG = Path("~/.config/llmfleet/contexts.yaml")
PLACEHOLDER = "{service}"
ENDPOINT_PATHS = ("/metrics", "/health", "/ready")


class TargetError(ValueError):
    """The options or the contexts file do not describe a platform (shown as a usage error)."""


@dataclass(frozen=True)
class Target:
    """Where the platform's broker, databases and service endpoints are.

    `local` targets read the local stack's state file at the moment they are asked, so a command
    run before `llmfleet up` sees what is running when it looks.
    """

    source: str
    bootstrap: str | None = None
    database_url_template: str | None = None
    database_urls: Mapping[str, str] = field(default_factory=dict)
    metrics: Mapping[str, str] = field(default_factory=dict)
    local: bool = False

    def database_url(self, service: str) -> str | None:
        """The SQLAlchemy URL of `service`'s role, or None when this target does not say."""
        if self.local:
            from deploy.local import postgres

            info = postgres.status()
            return postgres.database_url(service, info) if info.get("running") else None
        if url := self.database_urls.get(service) or os.environ.get(f"LLMFLEET_{service.upper()}_DATABASE_URL"):
            return url
        if self.database_url_template:
            return self.database_url_template.replace(PLACEHOLDER, service)
        return None

    def kafka_bootstrap(self) -> str | None:
        """host:port[,host:port] of the broker, or None when this target does not say."""
        if self.local:
            from deploy.local import kafka

            info = kafka.status()
            return str(info["bootstrap"]) if info.get("running") else None
        return self.bootstrap

    def metrics_base(self, service: str) -> str | None:
        """http://host:port of `service`'s metrics port (where /metrics, /health, /ready are)."""
        if self.local:
            from deploy.local import services

            recorded = services.status().get(service)
            return _base(str(recorded["metrics_url"])) if recorded and recorded.get("metrics_url") else None
        return self.metrics.get(service)

    def describe(self) -> dict[str, Any]:
        """What the target is, for `status -o json` (no passwords)."""
        return {
            "source": self.source,
            "bootstrap": self.kafka_bootstrap(),
            "databases": {s: _hide_password(u) for s in SERVICES if (u := self.database_url(s))},
            "metrics": {s: b for s in SERVICES if (b := self.metrics_base(s))},
        }


LOCAL = Target(source="local stack", local=True)


def parse_metrics(values: Iterable[str]) -> dict[str, str]:
    """`{service}` templates and `service=URL` pairs (comma-separated or repeated) -> base URL per service."""
    result: dict[str, str] = {}
    for value in values:
        for item in (part.strip() for part in value.split(",")):
            if not item:
                continue
            if PLACEHOLDER in item:
                result |= {s: _base(item.replace(PLACEHOLDER, s)) for s in SERVICES if s not in result}
                continue
            name, sep, url = item.partition("=")
            if not sep or name.strip() not in SERVICES or not url.strip().startswith(("http://", "https://")):
                raise TargetError(
                    f"--metrics {item!r}: give service=http://host:port (service one of {', '.join(SERVICES)})"
                    " or a template such as http://{service}:9100"
                )
            result[name.strip()] = _base(url.strip())
    return result


def _base(url: str) -> str:
    """A base URL from one that may end in an endpoint's path."""
    url = url.rstrip("/")
    for path in ENDPOINT_PATHS:
        if url.endswith(path):
            return url[: -len(path)]
    return url


def _hide_password(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # a malformed URL is shown as given up to its credentials, never with them
        return url.split("@")[-1]


def config_path(given: str | None = None) -> Path:
    """The contexts file: the given path, $LLMFLEET_CONFIG, or ~/.config/llmfleet/contexts.yaml."""
    return Path(given or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG).expanduser()


def load_context(name: str | None, path: Path) -> tuple[str, dict[str, Any]] | None:
    """The named context (or the file's `current-context` when no name is given); None when neither is set.

    The file:
        current-context: compose          # optional: used when no --context and no option is given
        contexts:
          compose:
            bootstrap: localhost:9094
            database-url: postgresql+asyncpg://{service}:change-me-{service}@localhost:5432/llmfleet
            database-urls: {cost: postgresql+asyncpg://cost:...@localhost:5432/llmfleet}
            metrics:                      # or one template: http://{service}:9100
              - router=http://localhost:9101
              - cost=http://localhost:9104
          local: {local: true}            # the local stack's state file
    """
    if not path.exists():
        if name:
            raise TargetError(f"context {name!r}: no contexts file at {path} (set {CONFIG_ENV} or create it)")
        return None
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise TargetError(f"{path} is not YAML: {error}") from None
    if not isinstance(document, dict) or not isinstance(document.get("contexts", {}), dict):
        raise TargetError(f"{path}: expected a mapping with `contexts: {{name: {{...}}}}`")
    contexts: dict[str, Any] = document.get("contexts") or {}
    chosen = name or document.get("current-context")
    if not chosen:
        return None
    if chosen not in contexts:
        known = ", ".join(sorted(contexts)) or "none"
        raise TargetError(f"no context {chosen!r} in {path} (contexts: {known})")
    body = contexts[chosen] or {}
    if not isinstance(body, dict):
        raise TargetError(f"context {chosen!r} in {path} must be a mapping")
    unknown = set(body) - {"bootstrap", "database-url", "database-urls", "metrics", "local"}
    if unknown:
        raise TargetError(f"context {chosen!r} in {path}: unknown keys {', '.join(sorted(unknown))}")
    return str(chosen), body


def resolve(
    bootstrap: str | None = None,
    database_url: str | None = None,
    metrics: Iterable[str] = (),
    context: str | None = None,
    config: str | None = None,
) -> Target:
    """The target from options (which win), then a context, then the local stack."""
    metrics = [m for m in metrics if m]
    named = load_context(context, config_path(config))
    if named is None and not (bootstrap or database_url or metrics):
        return LOCAL
    body: dict[str, Any] = named[1] if named else {}
    if named and body.get("local") and not (bootstrap or database_url or metrics):
        return Target(source=f"context {named[0]} (local stack)", local=True)
    context_metrics = body.get("metrics") or []
    if isinstance(context_metrics, str):
        context_metrics = [context_metrics]
    if isinstance(context_metrics, dict):
        context_metrics = [f"{k}={v}" for k, v in context_metrics.items()]
    urls = body.get("database-urls") or {}
    if not isinstance(urls, dict) or set(urls) - set(SERVICES):
        raise TargetError(f"database-urls: a mapping from {', '.join(SERVICES)} to URLs")
    given = [n for n, v in (("--bootstrap", bootstrap), ("--database-url", database_url), ("--metrics", metrics)) if v]
    source = " + ".join(([f"context {named[0]}"] if named else []) + ([" ".join(given)] if given else []))
    return Target(
        source=source,
        bootstrap=bootstrap or body.get("bootstrap"),
        database_url_template=database_url or body.get("database-url"),
        # Options replace the context's per-role URLs as they replace its template.
        database_urls={} if database_url else {str(k): str(v) for k, v in urls.items()},
        metrics=parse_metrics(metrics) if metrics else parse_metrics(context_metrics),
    )


# The target of the command being run: set by the CLI's root callback for the length of one invocation.
_CURRENT: ContextVar[Target] = ContextVar("llmfleet_target", default=LOCAL)


def use(where: Target) -> Callable[[], None]:
    """Make `where` the current target; returns what undoes it (the CLI calls it when the command ends)."""
    token = _CURRENT.set(where)
    return lambda: _CURRENT.reset(token)


def current() -> Target:
    """The target the running command was given; the local stack when none was."""
    return _CURRENT.get()
