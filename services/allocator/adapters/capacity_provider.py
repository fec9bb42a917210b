"""Where a pool's GPUs come from: the cluster's capacity provider.

The cluster autoscaler (`use_cases/cluster.py`) asks a provider for GPUs and gives free ones back.
A cloud implements `CapacityProvider` over its API (an instance group, a node pool, a capacity
reservation); locally, `EmulatedCapacityProvider` stands in for it: the inventory is the
capacity, and the delay is the cloud's provisioning time.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

log = logging.getLogger(__name__)


class CapacityProvider(Protocol):
    """Grows and shrinks a region's GPU pool of one type (quota is the caller's to respect)."""

    async def acquire(self, region: str, gpu_type: str, gpus: int) -> int:
        """Ask for `gpus` more; returns once they are usable, with how many the provider delivered."""

    async def release(self, region: str, gpu_type: str, gpu_ids: list[str]) -> None:
        """Give back GPUs that no longer belong to the pool."""


class EmulatedCapacityProvider:
    """The local cloud: every request is delivered whole after `delay_s` (the provisioning time)."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.acquired: list[tuple[str, str, int]] = []  # what it delivered, for the record
        self.released: list[tuple[str, str, list[str]]] = []

    async def acquire(self, region: str, gpu_type: str, gpus: int) -> int:
        """Wait out the emulated provisioning time, then deliver."""
        await asyncio.sleep(self.delay_s)
        self.acquired.append((region, gpu_type, gpus))
        log.info("capacity provider delivered %d %s GPUs in %s after %.1fs", gpus, gpu_type, region, self.delay_s)
        return gpus

    async def release(self, region: str, gpu_type: str, gpu_ids: list[str]) -> None:
        """Nothing to hand back locally: the GPUs simply leave the inventory."""
        self.released.append((region, gpu_type, list(gpu_ids)))
