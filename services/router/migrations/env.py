"""Alembic environment of the router (version table in its own schema)."""

from services.router.adapters.orm import metadata
from shared.migrations import run_env

run_env(metadata)
