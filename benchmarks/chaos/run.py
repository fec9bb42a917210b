"""One chaos run: its own stack, the router and the allocator, steady traffic, the faults (request path and
control path, on two tracks), the drain and the count."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.chaos import poison
from benchmarks.chaos.control import sweep
from benchmarks.chaos.control_faults import ControlInjector, ControlPath, ControlWatch
from benchmarks.chaos.control_tally import ControlFigures
from benchmarks.chaos.faults import Injector
from benchmarks.chaos.report import figures
from benchmarks.chaos.routers import RouterFleet
from benchmarks.chaos.schedule import CONTROL, INSTANT, Profile, Schedule
from benchmarks.chaos.stack import ChaosStack, chaos_paths
from benchmarks.chaos.traffic import Driver, Ledger, Recorder
from benchmarks.chaos.watch import OffsetWatch
from deploy.local.common import REPO_ROOT

TEARDOWN_RESERVE_S = 60.0
PROGRESS_EVERY_S = 15.0


@dataclass(frozen=True)
class Options:
    """The run's knobs (from the command line)."""

    seed: int
    quick: bool
    profile: Profile
    rate: float
    drain_s: float
    budget_s: float
    folder: Path | None = None


def run_folder(options: Options) -> Path:
    """`reports/chaos-<UTC time>` unless the options name one."""
    return options.folder or REPO_ROOT / "reports" / f"chaos-{datetime.now(UTC):%Y%m%d-%H%M%S}"


class ChaosRun:
    """Holds every part, so that `stop` can end each process it started, whatever happened."""

    def __init__(self, options: Options, schedule: Schedule, started: float) -> None:
        self.options, self.schedule, self.started = options, schedule, started
        self.folder = run_folder(options)
        self.stack = ChaosStack(chaos_paths(self.folder))
        self.routers: RouterFleet | None = None
        self.ledger = Ledger()
        self.control: ControlPath | None = None
        self.control_injector: ControlInjector | None = None
        self.control_figures: ControlFigures | None = None
        self.control_error: str | None = None

    def deadline(self) -> float:
        """Monotonic time by which the run must be tearing down."""
        return self.started + self.options.budget_s - TEARDOWN_RESERVE_S

    async def run(self) -> dict[str, Any]:
        """Start, inject, drain, count."""
        print(
            f"run folder {self.folder}; starting PostgreSQL, Kafka and Triton (a stack of this run's own)", flush=True
        )
        await asyncio.to_thread(self.stack.start)
        await self.stack.create_reply_topics()
        self.routers = RouterFleet(self.stack.info, self.stack.paths, str(self.stack.triton["http_url"]))
        self.routers.migrate()
        self.routers.spawn("a")
        control_ready = asyncio.create_task(self._start_control())
        if not await self.routers.ready("a"):
            raise RuntimeError(f"the router did not start; see {self.stack.paths.logs / 'router-a.log'}")
        await control_ready
        driver = Driver(self.stack.bootstrap, self.ledger, random.Random(self.options.seed))
        recorder = Recorder(self.stack.bootstrap, self.ledger)
        await driver.start()
        await recorder.start()
        try:
            return await self._phase(driver)
        finally:
            await driver.stop()
            await recorder.stop()

    async def _start_control(self) -> None:
        """Migrate and start the allocator; a failure is reported (the request path still runs)."""
        self.control = ControlPath(self.stack, self.folder, self.options.profile, self.options.seed)
        try:
            await self.control.start()
            if not await self.control.serving():
                raise RuntimeError(f"the allocator did not start; see {self.stack.paths.logs / 'allocator-a.log'}")
        except Exception as error:  # the control part is then reported as broken; the request path goes on
            self.control_error = repr(error)[:600]
            print(f"control path not started: {self.control_error}", flush=True)

    async def _phase(self, driver: Driver) -> dict[str, Any]:
        assert self.routers is not None
        t0 = time.monotonic()
        self.routers.t0 = t0
        print(f"stack up in {t0 - self.started:.0f} s; fault phase of {self.schedule.phase_s:.0f} s begins", flush=True)
        stop_traffic, stop_watch, stop_control = asyncio.Event(), asyncio.Event(), asyncio.Event()
        watch = OffsetWatch(self.stack.bootstrap, self.ledger, t0)
        limit = self.deadline() - min(self.options.drain_s, 60.0)
        injector = Injector(self.stack, self.routers, driver, t0, limit)
        expected = self.options.profile.allowance_s
        outages = [f for f in self.schedule.faults if f.kind not in INSTANT | CONTROL]
        instants = [f for f in self.schedule.faults if f.kind in INSTANT]
        tracks = [injector.run_all(outages, expected), injector.run_all(instants, expected)]
        background = [
            asyncio.create_task(driver.steady(self.options.rate, stop_traffic)),
            asyncio.create_task(watch.run(stop_watch)),
            asyncio.create_task(self.routers.supervise(stop_watch)),
            asyncio.create_task(self._progress(t0, watch, driver, stop_watch)),
        ]
        control = self.control if self.control_error is None else None
        if control is not None:
            control.fleet.t0 = t0
            control.watch = ControlWatch(control.probe, self.stack, t0)
            settle = self.options.profile.settle_s
            self.control_injector = ControlInjector(control, t0, self.deadline() - settle - 5.0, injector.exclusive)
            injector.companion = control
            tracks.append(
                self.control_injector.run_all([f for f in self.schedule.faults if f.kind in CONTROL], expected)
            )
            background += [
                asyncio.create_task(control.watch.run(stop_control)),
                asyncio.create_task(control.fleet.supervise(stop_control)),
            ]
        measured: asyncio.Task[None] | None = None
        try:
            await asyncio.gather(*tracks)
            measured = asyncio.create_task(self._measure_control(t0, injector, stop_control))
            tail = max(0.0, min(t0 + self.schedule.phase_s, limit) - time.monotonic())
            await asyncio.sleep(max(tail, self.options.profile.tail_s if time.monotonic() < limit else 0.0))
            stop_traffic.set()
            print(f"[{time.monotonic() - t0:7.1f}s] traffic stopped; waiting for the results still owed", flush=True)
            drained = await self._drain(t0)
            await measured
        finally:
            if measured is not None and not measured.done():
                measured.cancel()
            stop_traffic.set()
            stop_watch.set()
            stop_control.set()
            await asyncio.gather(*background, *([measured] if measured else []), return_exceptions=True)
        return figures(self, injector, watch, drained, t0)

    async def _measure_control(self, t0: float, injector: Injector, stop: asyncio.Event) -> None:
        """The control figures, read `settle_s` after the last fault of either track ended (within the budget)."""
        if self.control is None or self.control_error is not None:
            return
        done = [i.end_s for i in injector.injected + (self.control_injector.injected if self.control_injector else [])]
        at = min(t0 + max(done, default=0.0) + self.options.profile.settle_s, self.deadline() - 5.0)
        print(f"[{time.monotonic() - t0:7.1f}s] control figures at {at - t0:.0f} s (after the last fault)", flush=True)
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        try:
            self.control_figures = await self.control.measure(self.ledger.control_dead_letters)
            if self.control_figures is None:
                self.control_error = "the allocator's tables could not be read at the end"
        except Exception as error:  # reported, never hidden
            self.control_error = f"measuring failed: {error!r}"[:600]
        finally:
            stop.set()

    async def _drain(self, t0: float) -> float:
        """Wait (bounded by the drain time and the budget) until no result is owed; return seconds waited."""
        started = time.monotonic()
        until = min(started + self.options.drain_s, self.deadline())
        while time.monotonic() < until and self.ledger.owed:  # noqa: ASYNC110 - polls what the reader fills
            await asyncio.sleep(0.5)
        await asyncio.sleep(min(3.0, max(0.0, until - time.monotonic())))  # late duplicates show up too
        return time.monotonic() - started

    async def _progress(self, t0: float, watch: OffsetWatch, driver: Driver, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.sleep(PROGRESS_EVERY_S)
            ledger, routers = self.ledger, self.routers
            alive = [s.name for s in routers.slots.values() if s.alive()] if routers else []
            print(
                f"[{time.monotonic() - t0:7.1f}s] acked {len(ledger.acked):,} answered {len(ledger.answered):,} "
                f"owed {len(ledger.owed):,} committed {watch.last_committed()} routers {alive}"
                f"{'' if driver.open.is_set() else ' (Kafka down: sends paused)'}",
                flush=True,
            )

    async def stop(self) -> None:
        """Stop every process this run started, by pid: allocators, routers, then Triton, Kafka, PostgreSQL, and
        any process still working in the run's stack folder (a Triton server the state file never recorded, an
        allocator killed as it spawned one; the Python-backend stub of a server that crashed)."""
        if self.control is not None:
            try:
                await self.control.stop()
            except Exception as error:  # every part gets its stop
                print(f"teardown: {error!r}", flush=True)
        if self.routers is not None:
            await self.routers.stop_all()
        try:
            await asyncio.to_thread(self.stack.stop)
        finally:
            if left := await asyncio.to_thread(sweep, self.stack.paths.run):
                print(f"teardown: stopped processes left in the run's stack folder {left}", flush=True)


async def execute(options: Options, schedule: Schedule) -> tuple[dict[str, Any], Path]:
    """Run and always tear down; return the figures and the run folder."""
    run = ChaosRun(options, schedule, time.monotonic())
    try:
        return await run.run(), run.folder
    finally:
        print("stopping every process the run started...", flush=True)
        await asyncio.shield(run.stop())


def forbidden_topics() -> frozenset[str]:
    """Topics a result must never land on."""
    return frozenset(poison.FORBIDDEN_REPLY_TOPICS)
