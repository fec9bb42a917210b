"""Reading the fleet seed from its YAML file."""

from __future__ import annotations

from pathlib import Path

import yaml

from services.allocator.domain.fleet import FleetConfig, fleet_from_mapping


def load_fleet(path: Path) -> FleetConfig:
    """The fleet described by the YAML file at `path`."""
    return fleet_from_mapping(yaml.safe_load(path.read_text()))
