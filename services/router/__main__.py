"""`python -m services.router [migrate]`: migrate (when the database answers), then run the router until SIGTERM."""

import asyncio
import logging
import sys

from services.router.app import create_app, migrate
from services.router.settings import RouterSettings

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
log = logging.getLogger("services.router")
settings = RouterSettings()
if sys.argv[1:] == ["migrate"]:
    migrate(settings)  # the deploy's migration job: here a failure must fail the job
else:
    try:
        migrate(settings)
    except Exception as error:  # serving needs no database: the registry comes from Kafka
        log.warning("migrations not run (%r); serving without the registry tables until they are", error)
    app, _ = create_app(settings)
    asyncio.run(app.run())
