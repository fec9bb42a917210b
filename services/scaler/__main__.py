"""`python -m services.scaler [migrate]`: run migrations, then the service until SIGTERM."""

import asyncio
import sys

from services.scaler.app import create_app, migrate
from services.scaler.settings import ScalerSettings

settings = ScalerSettings()
migrate(settings)
if sys.argv[1:] != ["migrate"]:
    app, _ = create_app(settings)
    asyncio.run(app.run())
