"""`python -m services.cost [migrate]`: run migrations, then the service until SIGTERM."""

import asyncio
import logging
import sys

from services.cost.app import create_app, migrate
from services.cost.settings import CostSettings

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
settings = CostSettings()
migrate(settings)
if sys.argv[1:] != ["migrate"]:
    app, _ = create_app(settings)
    asyncio.run(app.run())
