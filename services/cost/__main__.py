"""`python -m services.cost [migrate]`: serve until SIGTERM, or migrate the schema and exit (the deploy's job)."""

from services.cost.app import create_app, migrate
from services.cost.settings import CostSettings
from shared.main import main

main(create_app, CostSettings, migrate)
