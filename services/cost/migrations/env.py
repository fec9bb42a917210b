"""Alembic environment of the cost service (version table in its own schema)."""

from services.cost.adapters.orm import metadata
from shared.migrations import run_env

run_env(metadata)
