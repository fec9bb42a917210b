"""The whole platform on this machine: the local stack (Kafka, PostgreSQL) and the six services.

Triton servers are not started here: the allocator starts them (one local process per emulated
GPU) when the scaler asks for capacity, in the run folder's stack, so `down` stops them too.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from deploy.local import kafka, postgres, services, stack, triton
from deploy.local.common import StackPaths, stack_paths
from services.allocator.settings import DEFAULT_FLEET


def fleet_with_models(models: Mapping[str, Mapping[str, Any]], folder: Path) -> Path:
    """The default fleet seed plus `models` (id -> requirements), written to `folder/fleet.yaml`."""
    fleet = yaml.safe_load(DEFAULT_FLEET.read_text())
    fleet["models"].update({model: dict(spec) for model, spec in models.items()})
    path = folder / "fleet.yaml"
    path.write_text(yaml.safe_dump(fleet, sort_keys=False))
    return path


def start_stack(paths: StackPaths, secure: bool = False) -> dict[str, Any]:
    """PostgreSQL and Kafka (with topics), no Triton server: the allocator starts those."""
    stack.install(paths)
    return stack.up(servers=(), paths=paths, secure=secure)


def up(
    settings: Mapping[str, str],
    group_prefix: str = "llmfleet",
    paths: StackPaths | None = None,
    secure: bool = False,
) -> dict[str, Any]:
    """Start PostgreSQL, Kafka (with topics) and the six services; return their addresses.

    `secure`: each service authenticates to Kafka as itself (SASL_SSL, its ACLs) and reaches
    PostgreSQL over TLS (docs/security.md).
    """
    paths = paths or stack_paths()
    info = start_stack(paths, secure=secure)
    info["services"] = services.start(info, settings, group_prefix=group_prefix, paths=paths)
    return info


def down(paths: StackPaths | None = None) -> dict[str, bool]:
    """Stop the services (they drain and commit), their Triton servers, Kafka and PostgreSQL.

    Returns, per service, whether it stopped by itself on SIGTERM.
    """
    paths = paths or stack_paths()
    clean = services.stop(paths)
    triton.stop_all(paths)
    kafka.stop(paths)
    postgres.stop(paths)
    return clean


def remove_data(paths: StackPaths) -> None:
    """Delete a stopped run's Kafka and PostgreSQL data; its logs stay."""
    postgres.remove_data(paths)
    shutil.rmtree(paths.run / "kafka", ignore_errors=True)
    shutil.rmtree(paths.run / "kafka-secure", ignore_errors=True)
