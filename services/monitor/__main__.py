"""`python -m services.monitor [migrate]`: run migrations, then the service until SIGTERM."""

import asyncio
import logging
import sys

from services.monitor.app import create_app, migrate
from services.monitor.settings import MonitorSettings

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
settings = MonitorSettings()
migrate(settings)
if sys.argv[1:] != ["migrate"]:
    app, _ = create_app(settings)
    asyncio.run(app.run())
