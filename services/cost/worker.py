"""The cost's jobs moved to `services.cost.jobs`; this name stays until handlers.py imports from there."""

from services.cost.jobs import Worker

__all__ = ["Worker"]
