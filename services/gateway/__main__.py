"""`python -m services.gateway [migrate]`: serve the OpenAI API until SIGTERM, or migrate the schema and exit."""

import uvloop

from services.gateway.app import create_app, migrate
from services.gateway.settings import GatewaySettings
from shared.main import main

uvloop.install()  # the HTTP hot path: uvicorn's fastest loop, as asyncio.run's policy
main(create_app, GatewaySettings, migrate)
