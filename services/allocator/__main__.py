"""`python -m services.allocator [migrate]`: serve until SIGTERM, or migrate the schema and exit (the deploy's job)."""

from services.allocator.app import create_app, migrate
from services.allocator.settings import AllocatorSettings
from shared.main import main

main(create_app, AllocatorSettings, migrate)
