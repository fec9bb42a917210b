"""llmfleet's request client alone (the llmfleet-client distribution): `from llmfleet.client import FleetClient`."""
