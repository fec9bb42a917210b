"""Carrying out the schedule: each fault against the run's own processes, with its real start and end."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from benchmarks.chaos.routers import RouterFleet
from benchmarks.chaos.schedule import INSTANT, Fault, FaultKind
from benchmarks.chaos.stack import ChaosStack
from benchmarks.chaos.traffic import Driver

PG_ROUTER_STOP_TIMEOUT = 20.0


@dataclass
class Injected:
    """A fault as it happened: planned and real start, real end (the outage is over), notes."""

    kind: FaultKind
    planned_s: float
    at_s: float
    end_s: float = 0.0
    detail: str = ""
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        found: dict[str, Any] = {"kind": self.kind.value, "at_s": self.at_s, "end_s": self.end_s}
        if self.detail:
            found["detail"] = self.detail
        if self.notes:
            found["notes"] = "; ".join(self.notes)
        return found


class Track:
    """Runs one track's faults in order, each at its planned time or after the previous one ends."""

    def __init__(self, t0: float, limit: float) -> None:
        self.t0, self.limit = t0, limit  # limit: monotonic time after which no new fault starts
        self.injected: list[Injected] = []
        self.skipped: list[dict[str, Any]] = []

    def now(self) -> float:
        """Seconds since the fault phase began."""
        return round(time.monotonic() - self.t0, 1)

    async def run_all(self, faults: Sequence[Fault], expected_s: dict[FaultKind, float]) -> None:
        """Run `faults` in order, each at its planned time or after the previous one ends (3 s apart)."""
        earliest = 0.0
        for fault in faults:
            await asyncio.sleep(max(0.0, self.t0 + max(fault.at_s, earliest) - time.monotonic()))
            if time.monotonic() + fault.duration_s + expected_s.get(fault.kind, 0.0) > self.limit:
                self.skipped.append({"kind": fault.kind.value, "planned_s": fault.at_s, "why": "time budget"})
                print(f"[{self.now():7.1f}s] skip {fault.kind.value}: not enough time left", flush=True)
                continue
            record = Injected(fault.kind, fault.at_s, self.now(), detail=fault.detail)
            self.injected.append(record)
            label = f"{fault.kind.value} {fault.detail} {fault.duration_s or ''}".strip()
            print(f"[{record.at_s:7.1f}s] inject {label}", flush=True)
            try:
                await self._do(fault, record)
            finally:
                record.end_s = self.now()
            print(f"[{record.end_s:7.1f}s] done   {fault.kind.value} {'; '.join(record.notes)}", flush=True)
            earliest = record.end_s + (3.0 if fault.kind not in INSTANT else 0.0)

    async def _do(self, fault: Fault, record: Injected) -> None:
        raise NotImplementedError


class PostgresCompanion(Protocol):
    """What the control path does around the shared PostgreSQL outage (a scale-up in flight)."""

    async def before_postgres_down(self, record: Injected) -> Callable[[], None]:
        """Put a scale-up in flight; return what lets it go on once PostgreSQL is down."""
        ...

    async def after_postgres_up(self, record: Injected) -> None:
        """Note what became of that scale-up."""
        ...


class Injector(Track):
    """Runs faults in order; outages one after another, poison and overload whenever they are due.

    `exclusive` is held through every Kafka and PostgreSQL outage; the control track holds it
    through each of its faults, so the two never overlap even when a fault runs late.
    """

    def __init__(self, stack: ChaosStack, routers: RouterFleet, driver: Driver, t0: float, limit: float) -> None:
        super().__init__(t0, limit)
        self.stack, self.routers, self.driver = stack, routers, driver
        self.exclusive = asyncio.Lock()
        self.companion: PostgresCompanion | None = None
        self._tags = 0

    def outages(self) -> list[tuple[float, float]]:
        """Real windows of the outages (instant faults excluded), for the stall count."""
        return [(i.at_s, i.end_s) for i in self.injected if i.kind not in INSTANT]

    async def _do(self, fault: Fault, record: Injected) -> None:
        handlers = {
            FaultKind.ROUTER_KILL: self._router_kill,
            FaultKind.ROUTER_JOIN: self._router_join,
            FaultKind.KAFKA_DOWN: self._kafka_down,
            FaultKind.POSTGRES_DOWN: self._postgres_down,
            FaultKind.TRITON_KILL: self._triton_kill,
            FaultKind.TRITON_STOP: self._triton_stop,
            FaultKind.POISON: self._poison,
            FaultKind.OVERLOAD: self._overload,
        }
        await handlers[fault.kind](fault, record)

    async def _restarted_router(self, record: Injected, since: str, timeout: float = 90.0) -> None:
        started = time.monotonic()
        ready = await self.routers.ready("a", timeout)
        waited = time.monotonic() - started
        record.notes.append(f"router serving {waited:.1f} s after {since}" if ready else "router NOT serving")

    async def _router_kill(self, fault: Fault, record: Injected) -> None:
        slot = self.routers.slots["a"]
        slot.busy = True
        try:
            self.routers.kill("a")
            self.routers.spawn("a")
        finally:
            slot.busy = False
        await self._restarted_router(record, "its restart")

    async def _router_join(self, fault: Fault, record: Injected) -> None:
        self.routers.spawn("b")
        ready = await self.routers.ready("b")
        record.notes.append("second router joined" if ready else "second router NOT ready")
        await asyncio.sleep(fault.duration_s)
        clean = await self.routers.terminate("b")
        record.notes.append("it left on SIGTERM" if clean else "it did not stop on SIGTERM (killed)")

    async def _kafka_down(self, fault: Fault, record: Injected) -> None:
        async with self.exclusive:
            await self._kafka_outage(fault, record)

    async def _kafka_outage(self, fault: Fault, record: Injected) -> None:
        self.driver.open.clear()
        try:
            await asyncio.to_thread(self.stack.kafka_down, fault.detail == "SIGKILL")
            await asyncio.sleep(fault.duration_s)
            started = time.monotonic()
            await asyncio.to_thread(self.stack.kafka_up)
            record.notes.append(f"broker back after {time.monotonic() - started:.1f} s of start-up")
        finally:
            self.driver.open.set()

    async def _postgres_down(self, fault: Fault, record: Injected) -> None:
        async with self.exclusive:
            let_go = await self.companion.before_postgres_down(record) if self.companion else None
            try:
                await self._postgres_outage(fault, record, let_go)
            finally:
                if let_go is not None:
                    let_go()  # also when stopping PostgreSQL failed
            if self.companion is not None:
                await self.companion.after_postgres_up(record)

    async def _postgres_outage(self, fault: Fault, record: Injected, let_go: Callable[[], None] | None) -> None:
        down_at = time.monotonic()
        await asyncio.to_thread(self.stack.postgres_down)
        if let_go is not None:
            let_go()
        try:
            await asyncio.sleep(fault.offset_s)
            slot = self.routers.slots["a"]
            slot.busy = True
            try:
                clean = await self.routers.terminate("a", PG_ROUTER_STOP_TIMEOUT)
                self.routers.spawn("a")
            finally:
                slot.busy = False
            record.notes.append(f"router restarted at +{fault.offset_s:.0f} s ({'clean' if clean else 'killed'})")
            await asyncio.sleep(max(0.0, down_at + fault.duration_s - time.monotonic()))
        finally:
            await asyncio.to_thread(self.stack.postgres_up)
        await self._restarted_router(record, "PostgreSQL was back")

    async def _triton_kill(self, fault: Fault, record: Injected) -> None:
        await asyncio.to_thread(self.stack.triton_kill)
        await asyncio.sleep(1.0)
        started = time.monotonic()
        await asyncio.to_thread(self.stack.start_triton)
        record.notes.append(f"server back after {time.monotonic() - started:.1f} s of start-up")

    async def _triton_stop(self, fault: Fault, record: Injected) -> None:
        self.stack.triton_signal(signal.SIGSTOP)
        try:
            await asyncio.sleep(fault.duration_s)
        finally:
            self.stack.triton_signal(signal.SIGCONT)

    async def _poison(self, fault: Fault, record: Injected) -> None:
        self._tags += 1
        count = await self.driver.poison_bundle(f"p{self._tags}")
        record.notes.append(f"{count} records")

    async def _overload(self, fault: Fault, record: Injected) -> None:
        self._tags += 1
        seconds = await self.driver.overload(f"o{self._tags}", fault.count, fault.models, 200_000)
        record.notes.append(f"{fault.count} requests over {fault.models} models sent in {seconds:.1f} s")
