"""The scaler assembled over the shared runtime, and its jobs: the outbox relay, evaluation rounds (with
history compaction) and retention."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from services.scaler.adapters.metrics import ScalerMetrics
from services.scaler.adapters.orm import inbox, outbox, scaling_action, scaling_signal
from services.scaler.settings import ScalerSettings
from services.scaler.use_cases.compaction import compact_history
from services.scaler.use_cases.evaluation import Evaluation, evaluate
from shared.jobs import Job, periodic
from shared.leader import leading
from shared.retention import Kept, messaging
from shared.runtime import Runtime, ServiceApp

EVALUATION_LOCK = "scaler.evaluation"  # one replica evaluates at a time


def retained(settings: ScalerSettings) -> tuple[Kept, ...]:
    """What retention prunes: inbox, sent outbox, monitor signals and resolved actions (demand is compacted)."""
    return (
        *messaging(inbox, outbox, settings),
        Kept(scaling_signal, "raised_at", settings.history_retention_s),
        Kept(scaling_action, "resolved_at", settings.history_retention_s),  # pending actions always stay
    )


class ScalerApp(ServiceApp[ScalerSettings, ScalerMetrics]):
    """The scaler: its runtime, settings, metrics and relay; an evaluation every `evaluation_interval_s`."""

    def __init__(self, runtime: Runtime, settings: ScalerSettings) -> None:
        metrics = ScalerMetrics(runtime.registry)
        super().__init__(runtime, settings, metrics, outbox, relay_poll_s=settings.outbox_poll_s)
        self._compacted_at = float("-inf")  # the first round compacts
        self._tracer = runtime.tracer_provider.get_tracer("llmfleet.scaler")

    def rounds(self) -> Sequence[Job]:
        """An evaluation round every `evaluation_interval_s`."""
        return (periodic("scaler evaluation", self.settings.evaluation_interval_s, self.evaluation_round),)

    def retained(self) -> Sequence[Kept]:
        """Inbox, sent outbox, monitor signals and resolved actions."""
        return retained(self.settings)

    async def evaluation_round(self) -> None:
        """Evaluate, then compact the history when `compaction_interval_s` has passed."""
        await self.evaluate_once()
        if time.monotonic() - self._compacted_at >= self.settings.compaction_interval_s:
            self._compacted_at = time.monotonic()
            await self.compact_once()

    async def evaluate_once(self, now: datetime | None = None) -> Evaluation | None:
        """One evaluation round (None when another replica holds the turn)."""
        started = time.perf_counter()
        async with leading(self.runtime.sessions, EVALUATION_LOCK) as leader:
            if not leader:
                return None
            # One trace per evaluation: forecasts and decisions are written in it, and the outbox
            # keeps its context, so the allocator's work on an action continues this trace.
            with self._tracer.start_as_current_span("scaler.evaluate") as span:
                result = await evaluate(
                    self.runtime.sessions, self.settings, now or datetime.now(UTC), lambda: uuid.uuid4().hex
                )
                span.set_attribute("llmfleet.forecasts", len(result.forecasts))
                span.set_attribute("llmfleet.actions", len(result.actions))
        self.metrics.evaluated(result, time.perf_counter() - started)
        self.relay.notify()
        return result

    async def compact_once(self, now: datetime | None = None) -> int:
        """Merge raw demand windows older than `compaction_age_s`; drop forecasts as old."""
        before = (now or datetime.now(UTC)) - timedelta(seconds=self.settings.compaction_age_s)
        return await compact_history(self.runtime.sessions, before, self.settings.compaction_bucket_s)
