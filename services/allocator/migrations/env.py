"""Alembic environment of the allocator (version table in its own schema)."""

from services.allocator.adapters.orm import metadata
from shared.migrations import run_env

run_env(metadata)
