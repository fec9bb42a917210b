"""Shared fixtures of the allocator's unit tests: the default fleet from the config file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from services.allocator.domain.fleet import FleetConfig, Pool, fleet_from_mapping

FLEET_YAML = Path(__file__).parents[3] / "services/allocator/fleet.yaml"


@pytest.fixture(scope="session")
def fleet() -> FleetConfig:
    return fleet_from_mapping(yaml.safe_load(FLEET_YAML.read_text()))


@pytest.fixture
def pools(fleet: FleetConfig) -> dict[tuple[str, str], Pool]:
    return {(p.region, p.gpu_type): p for p in fleet.pools}
