"""Once a second: the router group's committed offsets on the request topic, and the results still owed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient

from benchmarks.chaos import poison
from benchmarks.chaos.routers import GROUP_PREFIX
from benchmarks.chaos.tally import Sample
from benchmarks.chaos.traffic import Ledger

log = logging.getLogger(__name__)
OWED_MIN_AGE_S = 2.0  # a result owed for less than this is in flight, not pending work
GROUP_REFRESH_S = 10.0


class OffsetWatch:
    """Samples committed offsets with an admin client; an unreadable sample (Kafka down) is None."""

    def __init__(self, bootstrap: str, ledger: Ledger, t0: float) -> None:
        self._bootstrap, self._ledger, self._t0 = bootstrap, ledger, t0
        self._admin: AIOKafkaAdminClient | None = None
        self._groups: list[str] = []
        self._groups_at = 0.0
        self.samples: list[Sample] = []

    async def _client(self) -> AIOKafkaAdminClient:
        if self._admin is None:
            admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap, request_timeout_ms=3000)
            await asyncio.wait_for(admin.start(), 5)
            self._admin = admin
        return self._admin

    async def _drop(self) -> None:
        if self._admin is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._admin.close(), 3)
        self._admin = None

    async def _router_groups(self, admin: AIOKafkaAdminClient) -> list[str]:
        """Groups named after the run's router group (the router may suffix it, e.g. per topic)."""
        if not self._groups or time.monotonic() - self._groups_at > GROUP_REFRESH_S:
            listed: Any = await admin.list_consumer_groups()
            found = sorted({str(g[0]) for g in listed if str(g[0]).startswith(f"{GROUP_PREFIX}-router")})
            self._groups, self._groups_at = found, time.monotonic()
        return self._groups

    async def committed(self) -> int | None:
        """Sum of the committed offsets on the request topic over the router's groups (None: unreadable)."""
        try:
            admin = await self._client()
            total = 0
            for group in await self._router_groups(admin):
                offsets = await asyncio.wait_for(admin.list_consumer_group_offsets(group), 3)
                total += sum(max(meta.offset, 0) for tp, meta in offsets.items() if tp.topic == poison.REQUESTS_TOPIC)
            return total
        except Exception as error:  # Kafka down or restarting: no sample this second
            log.debug("offsets: %r", error)
            await self._drop()
            return None

    async def run(self, stop: asyncio.Event) -> None:
        """Sample once a second until `stop`."""
        while not stop.is_set():
            started = time.monotonic()
            committed = await self.committed()
            now = time.monotonic()
            pending = self._ledger.owed_since(now - OWED_MIN_AGE_S)
            self.samples.append(Sample(t=round(now - self._t0, 2), committed=committed, pending=pending))
            await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
        await self._drop()

    def last_committed(self) -> int | None:
        """The latest readable sample's committed total."""
        for sample in reversed(self.samples):
            if sample.committed is not None:
                return sample.committed
        return None
