"""The entry point of every service: `python -m services.<name> [migrate]`.

`migrate` is the deploy's migration job: it migrates the schema and exits (non-zero on failure).
A plain start runs the service until SIGTERM and migrates first only when the service's
`migrate_on_start` setting says so; then under an advisory lock, so replicas starting together
migrate one at a time.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from faststream import FastStream

from shared.db import create_engine, session_factory
from shared.leader import leading
from shared.logs import configure_logging
from shared.settings import ServiceSettings

S = TypeVar("S", bound=ServiceSettings)
log = logging.getLogger(__name__)


def main(
    create_app: Callable[[S], tuple[FastStream, Any]],
    settings_class: Callable[[], S],
    migrate: Callable[[S], None],
    *,
    needs_database: bool = True,
) -> None:
    """Run the service (or, with the argument `migrate`, its migrations); `needs_database=False`: start without one."""
    configure_logging()  # LLMFLEET_LOG_FORMAT: text (default) or json with trace ids
    args = sys.argv[1:]
    settings = settings_class()
    if args not in ([], ["migrate"]):
        sys.exit(f"usage: python -m services.{settings.service_name} [migrate]")
    if args == ["migrate"]:
        migrate_locked(settings, migrate)  # the deploy's job: a failure must fail the job
        return
    if settings.migrate_on_start:
        try:
            migrate_locked(settings, migrate)
        except Exception as error:
            if needs_database:
                raise
            log.warning("migrations not run (%r); serving without the database until it answers", error)
    app, _ = create_app(settings)
    asyncio.run(app.run())


def migrate_locked(settings: S, migrate: Callable[[S], None]) -> None:
    """Run `migrate(settings)` holding the service's migration lock (waits while another replica migrates)."""
    asyncio.run(_migrate_locked(settings, migrate))


async def _migrate_locked(settings: S, migrate: Callable[[S], None]) -> None:
    engine = create_engine(settings.database_url, settings.db_schema, pool_size=1)
    try:
        async with leading(session_factory(engine), f"{settings.service_name}.migrations", wait=True):
            # Alembic runs its own event loop: in a thread, while this loop holds the lock.
            await asyncio.to_thread(migrate, settings)
    finally:
        await engine.dispose()
