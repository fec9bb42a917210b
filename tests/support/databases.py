"""Admin access to the test PostgreSQL, for tests that need a database of their own."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from deploy.local import postgres

# Where each service's Alembic migrations live: services/<name>/migrations.
SERVICES_DIR = Path(__file__).resolve().parents[2] / "services"


def admin_url(postgres_info: dict[str, Any], database: str) -> str:
    """The superuser's asyncpg URL for `database` (an external server's admin URL when one is given)."""
    if admin := os.environ.get("LLMFLEET_TEST_POSTGRES_ADMIN_URL"):
        return make_url(admin).set(drivername="postgresql+asyncpg", database=database).render_as_string(False)
    password = postgres.role_password("admin")
    return f"postgresql+asyncpg://{postgres.SUPERUSER}:{password}@{postgres_info['host']}:{postgres_info['port']}/{database}"
