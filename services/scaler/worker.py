"""The scaler's background work: the outbox relay, the evaluation rounds and history compaction."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from services.scaler.adapters import history
from services.scaler.adapters.orm import outbox
from services.scaler.evaluation import Evaluation, evaluate
from services.scaler.metrics import ScalerMetrics
from services.scaler.settings import ScalerSettings
from shared.outbox import OutboxRelay
from shared.runtime import Runtime

log = logging.getLogger(__name__)
EVALUATION_LOCK = 0x5CA1E5  # advisory lock id: one replica evaluates at a time


class Worker:
    """Relays the outbox and evaluates every `evaluation_interval_s`; started after the broker."""

    def __init__(self, runtime: Runtime, settings: ScalerSettings, metrics: ScalerMetrics) -> None:
        self.runtime = runtime
        self.settings = settings
        self.metrics = metrics
        self.relay = OutboxRelay(runtime.sessions, outbox, runtime.broker)
        self._tasks: list[asyncio.Task[None]] = []

    async def evaluate_once(self, now: datetime | None = None) -> Evaluation | None:
        """One evaluation round (None when another replica holds the turn)."""
        started = time.perf_counter()
        async with self.runtime.sessions() as lock:
            if not (await lock.execute(select(func.pg_try_advisory_lock(EVALUATION_LOCK)))).scalar_one():
                return None
            try:
                result = await evaluate(
                    self.runtime.sessions, self.settings, now or datetime.now(UTC), lambda: uuid.uuid4().hex
                )
            finally:
                await lock.execute(select(func.pg_advisory_unlock(EVALUATION_LOCK)))
        self.metrics.evaluated(result, time.perf_counter() - started)
        self.relay.notify()
        return result

    async def compact_once(self, now: datetime | None = None) -> int:
        """Merge raw demand windows older than `compaction_age_s`; drop forecasts as old."""
        before = (now or datetime.now(UTC)) - timedelta(seconds=self.settings.compaction_age_s)
        async with self.runtime.sessions.begin() as session:
            removed = await history.compact_history(session, before, self.settings.compaction_bucket_s)
            await history.drop_old_forecasts(session, before)
        return removed

    async def _evaluations(self) -> None:
        last_compaction = 0.0
        while True:
            await asyncio.sleep(self.settings.evaluation_interval_s)
            try:
                await self.evaluate_once()
                if time.monotonic() - last_compaction >= self.settings.compaction_interval_s:
                    last_compaction = time.monotonic()
                    await self.compact_once()
            except Exception:
                log.exception("scaler evaluation failed; next round in %ss", self.settings.evaluation_interval_s)

    async def start(self) -> None:
        """Relay and evaluate in the background."""
        self._tasks = [
            asyncio.create_task(self.relay.run(self.settings.outbox_poll_s)),
            asyncio.create_task(self._evaluations()),
        ]
        self.relay.notify()

    async def stop(self) -> None:
        """Cancel the background tasks and wait for them."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
