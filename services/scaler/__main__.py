"""`python -m services.scaler [migrate]`: serve until SIGTERM, or migrate the schema and exit (the deploy's job)."""

from services.scaler.app import create_app, migrate
from services.scaler.settings import ScalerSettings
from shared.main import main

main(create_app, ScalerSettings, migrate)
