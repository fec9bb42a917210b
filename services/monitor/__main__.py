"""`python -m services.monitor [migrate]`: serve until SIGTERM, or migrate the schema and exit (the deploy's job)."""

from services.monitor.app import create_app, migrate
from services.monitor.settings import MonitorSettings
from shared.main import main

main(create_app, MonitorSettings, migrate)
