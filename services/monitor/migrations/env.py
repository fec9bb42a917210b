"""Alembic environment of the monitor (version table in its own schema)."""

from services.monitor.adapters.orm import metadata
from shared.migrations import run_env

run_env(metadata)
