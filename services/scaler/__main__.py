"""`python -m services.scaler [migrate]`: run migrations, then the service until SIGTERM."""

import asyncio
import logging
import sys

from services.scaler.app import create_app, migrate
from services.scaler.settings import ScalerSettings

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
settings = ScalerSettings()
migrate(settings)
if sys.argv[1:] != ["migrate"]:
    app, _ = create_app(settings)
    asyncio.run(app.run())
