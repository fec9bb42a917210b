"""`python -m services.router [migrate]`: run migrations, then the router until SIGTERM (drains first)."""

import asyncio
import logging
import sys

from services.router.app import create_app, migrate
from services.router.settings import RouterSettings

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
settings = RouterSettings()
migrate(settings)
if sys.argv[1:] != ["migrate"]:
    app, _ = create_app(settings)
    asyncio.run(app.run())
