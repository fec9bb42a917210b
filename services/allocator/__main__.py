"""`python -m services.allocator [migrate]`: run migrations, then the service until SIGTERM."""

import asyncio
import logging
import sys

from services.allocator.app import create_app, migrate
from services.allocator.settings import AllocatorSettings

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
settings = AllocatorSettings()
migrate(settings)
if sys.argv[1:] != ["migrate"]:
    app, _ = create_app(settings)
    asyncio.run(app.run())
