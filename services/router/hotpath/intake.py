"""A poll's records into the pipeline: each one admitted, refused with its one outcome, or skipped as answered.

Every record read ends in exactly one outcome, whatever it holds: a result (ok, rejected with
the reason, failed with the reason), or, for a record with no readable request id, a dead
letter. Nothing one record raises stops the loop: a router bug on one record still answers it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any

from opentelemetry.trace import Tracer

from services.router.hotpath.gate import Gate
from services.router.hotpath.offsets import Offsets, partition_of
from services.router.hotpath.pipeline import RouterCore
from services.router.hotpath.records import Unreadable, read_request, record_ticket, ticket, unreadable
from services.router.hotpath.results import ResultPublisher
from services.router.settings import RouterSettings

log = logging.getLogger(__name__)


class Intake:
    """Reads the records of each poll in order: offsets, crash repeats and entry checks, then the pipeline."""

    def __init__(
        self,
        settings: RouterSettings,
        gate: Gate,
        offsets: Offsets,
        results: ResultPublisher,
        core: RouterCore,
        tracer: Tracer,
    ) -> None:
        self._settings = settings
        self._gate = gate
        self._offsets = offsets
        self._results = results
        self._core = core
        self._tracer = tracer
        self._seq = 0  # arrival order, for the batcher's ties

    async def take(self, records: list[Any]) -> None:
        """Handle one poll's records in order; each ends in an outcome and none can stop the loop."""
        now, wall = time.monotonic(), time.time()
        for number, record in enumerate(records, 1):
            if number % 64 == 0:  # let batches that came back publish between chunks of a large poll
                await asyncio.sleep(0)
            if not self._offsets.owns(partition_of(record)):
                continue  # revoked while this poll was handled: the new owner reads it
            try:
                await self._read_one(record, now, wall)
            except Exception as error:  # a router bug on one record: it still gets an outcome
                log.exception("record %s@%s:%s", record.topic, record.partition, record.offset)
                self._refuse(record, unreadable(record.value, f"router error: {error!r}"), None)

    async def _read_one(self, record: Any, now: float, wall: float) -> None:
        if not self._offsets.received(record):
            return  # answered by this partition's previous owner (commit metadata)
        self._seq += 1
        try:
            ratio = self._settings.trace_root_ratio
            sampled = ratio >= 1.0 or random.random() < ratio
            request = read_request(record, self._tracer, now, wall, self._seq, sampled)
        except Unreadable as bad:
            if self._repeat(record, bad.request_id):
                return
            self._refuse(record, bad, bad.reply_topic if self._gate.reply_refusal(bad.reply_topic) is None else None)
            return
        if self._repeat(record, request.request_id):
            ticket(request).span.end()
            return
        ticket(request).epoch = self._offsets.epoch(partition_of(record))
        refusal = self._gate.reply_refusal(ticket(request).reply_topic) or self._gate.size_refusal(request)
        if refusal and refusal.startswith("reply_topic"):
            ticket(request).reply_topic = None  # the result goes to the shared results topic
        await self._core.accept(request, refusal)

    def _refuse(self, record: Any, bad: Unreadable, reply_topic: str | None) -> None:
        """A record with no servable request: its rejection (or dead letter) in the background."""
        letter = record_ticket(record, self._offsets.epoch(partition_of(record)))
        self._core.spawn(self._results.refuse(record, bad, reply_topic, letter))

    def _repeat(self, record: Any, request_id: str | None) -> bool:
        """True when the record's request was answered by a crashed owner: it is settled, not run again."""
        if not self._gate.repeated(partition_of(record), record.offset, request_id):
            return False
        self._offsets.settled_before(record)
        return True
