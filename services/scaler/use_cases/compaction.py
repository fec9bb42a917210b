"""Compacting the demand history: old raw windows merged into coarser buckets, old forecasts dropped."""

from __future__ import annotations

from datetime import datetime

from services.scaler.adapters.repository import Database, scaler_store


async def compact_history(sessions: Database, before: datetime, bucket_s: int) -> int:
    """Merge raw demand windows older than `before` into `bucket_s` buckets, drop forecasts as old; rows removed."""
    async with scaler_store(sessions).transaction() as repo:
        removed = await repo.compact_history(before, bucket_s)
        await repo.drop_old_forecasts(before)
    return removed
