"""`python -m services.router [migrate]`: serve until SIGTERM (no database needed), or migrate and exit."""

from services.router.app import create_app, migrate
from services.router.settings import RouterSettings
from shared.main import main

main(create_app, RouterSettings, migrate, needs_database=False)
