"""Alembic environment of the gateway (version table in its own schema)."""

from services.gateway.adapters.orm import metadata
from shared.migrations import run_env

run_env(metadata)
