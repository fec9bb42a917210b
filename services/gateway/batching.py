"""The Batch API assembled for one replica: its store, Kafka link, runner and results recorder, and their jobs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from services.gateway.adapters.batch_kafka import BatchLink
from services.gateway.adapters.batch_repository import BatchRepository
from services.gateway.adapters.batch_tables import batch_store
from services.gateway.domain.batch_lines import parser
from services.gateway.domain.budgets import Prices
from services.gateway.domain.catalogue import Catalogue
from services.gateway.settings import GatewaySettings
from services.gateway.use_cases.batch_results import BatchResults
from services.gateway.use_cases.batch_runner import BatchKnobs, BatchRunner
from services.gateway.use_cases.ledger import Ledger
from shared.events import InferenceCompleted
from shared.jobs import Job, loop
from shared.unit_of_work import Transactions

log = logging.getLogger(__name__)


class Batches:
    """What a replica runs for the Batch API; `jobs()` are supervised by the service's runtime."""

    def __init__(
        self, settings: GatewaySettings, sessions: Transactions[BatchRepository], catalogue: Catalogue, ledger: Ledger
    ) -> None:
        self.store = batch_store(sessions)
        self.link = BatchLink(
            settings.kafka_bootstrap,
            settings.requests_topic,
            settings.batch_reply_topic,
            settings.batch_reply_partitions,
            settings.batch_consumer_group,
            settings.kafka_security,
        )
        parse = parser(catalogue, settings.default_max_tokens)
        prices = Prices.per_1k_tokens(settings.default_price_per_1k_tokens, settings.price_per_1k_tokens)
        knobs = BatchKnobs(
            owner=settings.instance_id,
            pool=settings.batch_pool,
            priority=settings.batch_priority,
            window=settings.batch_window,
            line_timeout_s=settings.batch_line_timeout_s,
            resend_after_s=settings.batch_resend_after_s,
            lease_s=settings.batch_lease_s,
            max_attempts=settings.batch_max_attempts,
            retry_s=settings.batch_retry_s,
            max_lines=settings.batch_max_lines,
            prices=prices,
        )
        self.runner = BatchRunner(self.store, ledger, self.link, parse, knobs)
        self.results = BatchResults(
            self.store, ledger, parse, settings.batch_max_attempts, settings.batch_retry_s, prices
        )
        self.interval_s = settings.batch_interval_s
        self.max_file_bytes = settings.batch_max_file_bytes
        self.pool = settings.batch_pool
        self._wake = asyncio.Event()

    async def start(self) -> None:
        """Create the batch reply topic and connect."""
        await self.link.start()

    async def stop(self) -> None:
        """Let the batches go and disconnect (lines in flight keep their rows; their results wait in Kafka)."""
        try:
            await self.runner.release()
        except Exception as error:  # the leases run out by themselves; never block the stop
            log.warning("batch leases not released: %r", error)
        await self.link.stop()

    def jobs(self) -> Sequence[Job]:
        """The runner's rounds and the results consumer."""
        return [
            loop("gateway batch runner", self._rounds),
            loop("gateway batch results", lambda: self.link.run(self._record)),
        ]

    async def _record(self, results: list[InferenceCompleted]) -> None:
        """Record results, and wake the runner: answered lines leave room in their batch's window."""
        if await self.results.record(results):
            self._wake.set()

    async def _rounds(self) -> None:
        """A round every `batch_interval_s`, or sooner when results came; a failed round is tried again."""
        failures = 0
        while True:
            try:
                await self.runner.round()
                failures = 0
            except Exception as error:  # the database or the broker is away: the next round tries again
                failures += 1
                if failures in (1, 10) or failures % 200 == 0:
                    log.warning("batch round failed (%d in a row): %r", failures, error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval_s)
            self._wake.clear()
