"""The whole local stack at once: PostgreSQL, Kafka (with the platform's topics) and Triton servers."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from deploy.local import kafka, postgres, triton
from deploy.local.common import StackPaths, stack_paths


@dataclass(frozen=True)
class ServerSpec:
    """One emulated GPU: a Triton process with a GPU profile, in a region, with models loaded."""

    name: str
    gpu_type: str
    region: str
    models: tuple[str, ...] = ("tinylm",)


# Two GPU types in two regions: enough to exercise routing, fallback and regional choices.
DEFAULT_SERVERS: tuple[ServerSpec, ...] = (
    ServerSpec("triton-use1-a100-0", "a100_80gb", "us-east-1"),
    ServerSpec("triton-euw1-v100-0", "v100_32gb", "eu-west-1"),
)


def install(paths: StackPaths | None = None) -> None:
    """Fetch what the stack runs (Kafka jars, the Triton binary) once into the cache."""
    paths = paths or stack_paths()
    kafka.ensure_installed(paths)
    triton.ensure_installed(paths)


def up(
    servers: tuple[ServerSpec, ...] = DEFAULT_SERVERS, paths: StackPaths | None = None, secure: bool = False
) -> dict[str, Any]:
    """Start everything (idempotent) and create the topics; return the addresses.

    `secure`: Kafka with SASL_SSL and ACLs per service, PostgreSQL with TLS (docs/security.md).
    """
    from shared.broker import ensure_topics

    paths = paths or stack_paths()
    pg = postgres.start(paths, secure=secure)
    broker = kafka.start(paths, secure=secure)
    asyncio.run(ensure_topics(broker["bootstrap"], security=kafka.security_for(broker, "admin")))
    started = {}
    for spec in servers:
        profile = triton.PROFILES[spec.gpu_type]
        started[spec.name] = triton.start_server(spec.name, profile, spec.models, paths=paths, region=spec.region)
    return {"postgres": pg, "kafka": broker, "triton": started}


def down(paths: StackPaths | None = None) -> None:
    """Stop every process the stack recorded; data and logs stay under the run folder."""
    paths = paths or stack_paths()
    triton.stop_all(paths)
    kafka.stop(paths)
    postgres.stop(paths)


def status(paths: StackPaths | None = None) -> dict[str, Any]:
    """What is recorded and whether each part answers."""
    paths = paths or stack_paths()
    return {
        "postgres": postgres.status(paths),
        "kafka": kafka.status(paths),
        "triton": triton.status(paths),
        "logs": str(paths.logs),
    }
