"""Alembic environment of the scaler (version table in its own schema)."""

from services.scaler.adapters.orm import metadata
from shared.migrations import run_env

run_env(metadata)
