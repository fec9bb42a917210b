"""The scaler's jobs moved to `services.scaler.jobs`; this name stays until handlers.py imports from there."""

from services.scaler.jobs import Worker

__all__ = ["Worker"]
