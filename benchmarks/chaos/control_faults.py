"""The control path's faults, and the part of a chaos run that drives and watches the allocator.

Scaling is driven as the scaler would drive it: `ScalingActionRequested` events on the
scaling-actions topic, keyed by model, from a plain aiokafka producer. Each allocator kill finds
its phase by polling the allocator's tables and /proc (every 50 ms), then SIGKILLs the allocator's
process group (its launcher with it; a Triton server it started lives in a session of its own):

- before_spawn: the harness holds the run's stack state lock, in which the launcher waits before it
  spawns a server; the kill comes once the server row says `starting`, so no process exists yet;
- during_start: the row says `starting` and the server's Triton process exists;
- after_running: the row says `running` (the commit that also announces the server);
- during_unload: an unload was planned (the server row says `stopping`).

Every kill is followed by a restart of the allocator, and the fault notes whether its phase was
really hit (a missed phase is reported, never passed off as hit).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer

from benchmarks.chaos.control import (
    MODEL,
    REGION,
    AllocatorFleet,
    ControlProbe,
    StateLock,
    triton_processes,
)
from benchmarks.chaos.control_tally import (
    ControlFigures,
    Duplicates,
    ServerRow,
    count_control,
    gpu_conservation_violations,
    triton_key,
)
from benchmarks.chaos.faults import Injected, Track
from benchmarks.chaos.schedule import Fault, FaultKind, KillPhase, Profile
from benchmarks.chaos.stack import ChaosStack
from benchmarks.chaos.traffic import CONTROL_TOPICS
from shared.events import PRICES, SCALING_ACTIONS, ActionKind, ScalingActionRequested

UNREADABLE_BYTES = 800_000
POLL_S = 0.05
PHASE_TIMEOUT_S = 20.0
ACTION_WAIT_S = 15.0  # after a fault: how long the harness waits to note the action's outcome
RESTART_TIMEOUT_S = 60.0


class ControlDriver:
    """Publishes scaling actions and poison on the control topics (acks=all, idempotent)."""

    def __init__(self, bootstrap: str) -> None:
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            enable_idempotence=True,
            request_timeout_ms=15_000,
            max_request_size=1_048_576,
        )
        self.published: list[str] = []  # action ids, in order
        self.poison: list[tuple[str, int, int]] = []  # (topic, partition, offset) of every poison record
        self._seq = 0

    async def start(self) -> None:
        """Connect."""
        await self._producer.start()

    async def stop(self) -> None:
        """Close (bounded: Kafka may be gone)."""
        try:
            await asyncio.wait_for(self._producer.stop(), 20)
        except Exception as error:  # teardown goes on regardless
            print(f"control producer stop: {error!r}", flush=True)

    async def action(self, kind: ActionKind, target: int, current: int, why: str) -> str:
        """Ask for `target` instances of the model (as the scaler does); return the action id."""
        self._seq += 1
        action_id = f"chaos-{self._seq:03d}-{uuid.uuid4().hex[:6]}"
        event = ScalingActionRequested(
            source="chaos", action_id=action_id, model_id=MODEL, region=REGION, kind=kind,
            current_instances=current, target_instances=target, reason=f"chaos: {why}", priority="high",
        )  # fmt: skip
        await asyncio.wait_for(
            self._producer.send_and_wait(SCALING_ACTIONS.name, event.model_dump_json().encode(), key=MODEL.encode()),
            30,
        )
        self.published.append(action_id)
        return action_id

    async def send_poison(self, rng: random.Random) -> list[str]:
        """On each control topic: 800 KB of random bytes and well-formed JSON of a wrong schema (scaling: keyed
        by the model, so it lands where the model's actions flow)."""
        now = datetime.now(UTC).isoformat()
        envelope = {"event_id": str(uuid.uuid4()), "occurred_at": now, "schema_version": 1, "source": "chaos"}
        wrong = {
            SCALING_ACTIONS.name: {**envelope, "type": "scaling_action_requested", "action_id": 42,
                                   "model_id": [MODEL], "kind": "explode", "target_instances": -3},
            PRICES.name: {**envelope, "type": "prices_published", "prices": "cheap", "region": None},
        }  # fmt: skip
        kinds = []
        for topic in CONTROL_TOPICS:
            key = MODEL.encode() if topic == SCALING_ACTIONS.name else REGION.encode()
            for kind, value in (("unreadable_800kb", rng.randbytes(UNREADABLE_BYTES)), ("wrong_schema", wrong[topic])):
                raw = value if isinstance(value, bytes) else json.dumps(value).encode()
                meta = await asyncio.wait_for(self._producer.send_and_wait(topic, raw, key=key), 30)
                self.poison.append((topic, meta.partition, meta.offset))
                kinds.append(f"{kind}@{topic}[{meta.partition}]")
        return kinds


class ControlWatch:
    """Once a second: the allocator's Triton processes, then its tables: duplicate servers, GPU conservation."""

    def __init__(self, probe: ControlProbe, stack: ChaosStack, t0: float) -> None:
        self._probe, self._stack, self._t0 = probe, stack, t0
        self.duplicates = Duplicates()
        self.max_violations = 0
        self.max_processes = 0
        self.samples = 0
        self.errors: list[str] = []

    async def look(self) -> tuple[dict[int, str], Any]:
        """Processes first, then the tables (a row always exists before its process)."""
        processes = await asyncio.to_thread(triton_processes, self._stack.paths.run)
        return processes, await self._probe.snapshot()

    async def run(self, stop: asyncio.Event) -> None:
        """Sample until `stop`."""
        while not stop.is_set():
            started = time.monotonic()
            try:
                processes, snapshot = await self.look()
            except Exception as error:  # one look lost (counted), the watch goes on
                self.errors.append(repr(error)[:200])
                processes, snapshot = {}, None
            self.max_processes = max(self.max_processes, len(processes))
            if snapshot is not None:
                self.samples += 1
                self.duplicates.own(snapshot.servers)
                self.duplicates.sample(processes, time.monotonic() - self._t0)
                self.max_violations = max(self.max_violations, len(gpu_conservation_violations(snapshot)))
            await asyncio.sleep(max(0.1, 1.0 - (time.monotonic() - started)))


class ControlPath:
    """The allocator (one or two replicas), what drives it and what watches it; `stop` ends every process."""

    def __init__(self, stack: ChaosStack, folder: Any, profile: Profile, seed: int) -> None:
        self.stack, self.profile = stack, profile
        self.fleet = AllocatorFleet(stack.info, stack.paths, folder)
        self.probe = ControlProbe(stack.info)
        self.driver = ControlDriver(stack.bootstrap)
        self.rng = random.Random(seed + 1)
        self.watch: ControlWatch | None = None
        self.locks: list[StateLock] = []
        self.kills: list[dict[str, Any]] = []
        self._pg_action: str | None = None

    async def start(self) -> None:
        """Migrate the allocator's schema (and seed the fleet), start one allocator, connect the producer."""
        await asyncio.to_thread(self.fleet.migrate)
        self.fleet.spawn("a")
        await self.driver.start()

    async def serving(self) -> bool:
        """Wait until the first allocator is ready."""
        return await self.fleet.serving("a", 90.0)

    # -- helpers the faults share

    async def instances(self) -> int:
        """The model's instances now (0 when the tables cannot be read)."""
        return await self.probe.instances(MODEL) or 0

    async def ask(self, kind: ActionKind, target: int, why: str) -> str:
        """Publish an action for the model."""
        return await self.driver.action(kind, target, await self.instances(), why)

    async def wait_action(self, action_id: str, timeout: float) -> str:
        """Until the action is no longer in progress (or the timeout): its last seen state."""
        deadline = time.monotonic() + timeout
        state: str | None = None
        while time.monotonic() < deadline:
            state = await self.probe.action_state(action_id)
            if state not in (None, "", "in_progress"):
                return state
            await asyncio.sleep(0.5)
        return {None: "unreadable", "": "not recorded"}.get(state, state or "")

    async def settle(self, want_some: bool, timeout: float = 20.0) -> str:
        """Bring the model to no instance (or to at least one) first; say what it took."""
        have = await self.instances()
        if (have > 0) == want_some:
            return f"{have} instances before"
        kind, target = (ActionKind.SCALE_UP, 1) if want_some else (ActionKind.UNLOAD, 0)
        started = time.monotonic()
        action = await self.ask(kind, target, "set-up for the next fault")
        state = await self.wait_action(action, timeout)
        return f"set-up {kind.value} {target}: {state} in {time.monotonic() - started:.1f} s"

    async def restart(self, record: Injected, name: str = "a") -> None:
        """Start the allocator again; note how long until it is ready."""
        started = time.monotonic()
        self.fleet.spawn(name)
        ok = await self.fleet.serving(name, RESTART_TIMEOUT_S)
        waited = time.monotonic() - started
        record.notes.append(f"allocator ready {waited:.1f} s after its restart" if ok else "allocator NOT ready")

    def hold_state(self) -> StateLock:
        """A state lock the harness will take (released in `stop` too, whatever happened)."""
        lock = StateLock(self.stack.paths)
        self.locks.append(lock)
        return lock

    # -- the PostgreSQL outage, shared with the request path

    async def before_postgres_down(self, record: Injected) -> Callable[[], None]:
        """Put a scale-up in flight: its server row is `starting` while the launcher waits for the state lock.

        Never raises: the request path's outage goes on whatever happened here (noted).
        """
        lock = self.hold_state()
        try:
            return await self._scale_up_in_flight(record, lock)
        except Exception as error:  # noted; the outage is the request path's too
            record.notes.append(f"scale-up not put in flight: {error!r}"[:300])
            return lock.release

    async def _scale_up_in_flight(self, record: Injected, lock: StateLock) -> Callable[[], None]:
        deadline = time.monotonic() + self.profile.pg_prepare_s
        record.notes.append(await self.settle(False, timeout=max(1.0, deadline - time.monotonic() - 5)))
        if not await lock.acquire(timeout=3):
            record.notes.append("state lock busy: no scale-up held in flight")
            return lock.release
        self._pg_action = action = await self.ask(ActionKind.SCALE_UP, 1, "scale-up while PostgreSQL goes down")
        seen = await _poll(lambda: self._rows_of(action, "starting"), max(1.0, deadline - time.monotonic()))
        if seen:
            record.notes.append(f"scale-up {action} in flight ({seen[0].server_id} starting)")
        else:
            record.notes.append(f"scale-up {action} NOT in flight when PostgreSQL went down (no starting row)")
        return lock.release

    async def after_postgres_up(self, record: Injected) -> None:
        """Note what became of the scale-up."""
        if self._pg_action is not None:
            try:
                state = await self.wait_action(self._pg_action, 10.0)
            except Exception as error:  # noted, never raised into the request path's fault
                state = f"unknown ({error!r})"[:200]
            record.notes.append(f"scale-up {state} after PostgreSQL was back")

    async def _rows_of(self, action: str, state: str) -> list[ServerRow]:
        rows = await self.probe.servers() or []
        return [r for r in rows if r.action_id == action and r.state == state]

    # -- the figures

    async def measure(self, dead_letters: set[tuple[str, int, int]]) -> ControlFigures | None:
        """The final look: processes, then the tables (a few tries while PostgreSQL does not answer)."""
        assert self.watch is not None
        for _ in range(10):
            processes, snapshot = await self.watch.look()
            if snapshot is not None:
                self.watch.duplicates.own(snapshot.servers)
                self.watch.duplicates.sample(processes)
                return count_control(
                    processes,
                    snapshot,
                    self.watch.duplicates,
                    self.driver.published,
                    self.profile.stuck_after_s,
                    self.driver.poison,
                    dead_letters,
                )
            await asyncio.sleep(1.0)
        return None

    async def stop(self) -> None:
        """Let go of any state lock, stop the allocators (by pid), close the clients."""
        for lock in self.locks:
            lock.release()
        await self.fleet.stop_all(timeout=20.0)
        await self.driver.stop()
        await self.probe.close()


async def _poll(check: Callable[[], Awaitable[list[ServerRow]]], timeout: float) -> list[ServerRow]:
    """Poll `check` every 50 ms until it finds something (or the timeout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := await check():
            return found
        await asyncio.sleep(POLL_S)
    return []


class ControlInjector(Track):
    """The control track: each fault holds `exclusive`, so no Kafka or PostgreSQL outage overlaps it."""

    def __init__(self, path: ControlPath, t0: float, limit: float, exclusive: asyncio.Lock) -> None:
        super().__init__(t0, limit)
        self.path, self.exclusive = path, exclusive

    async def _do(self, fault: Fault, record: Injected) -> None:
        handlers = {
            FaultKind.ALLOCATOR_KILL: self._allocator_kill,
            FaultKind.ALLOCATOR_JOIN: self._allocator_join,
            FaultKind.CONTROL_POISON: self._control_poison,
        }
        async with self.exclusive:
            try:
                await handlers[fault.kind](fault, record)
            except Exception as error:  # a harness step failed (e.g. Kafka did not answer): note it, go on
                record.notes.append(f"harness error: {error!r}"[:300])

    async def _allocator_kill(self, fault: Fault, record: Injected) -> None:
        path, phase = self.path, KillPhase(fault.detail)
        record.notes.append(await path.settle(want_some=phase is KillPhase.DURING_UNLOAD))
        slot = path.fleet.slots["a"]
        slot.busy = True  # the supervisor leaves it alone: this exit is asked for
        lock = path.hold_state() if phase is KillPhase.BEFORE_SPAWN else None
        try:
            try:
                if lock is not None and not await lock.acquire(timeout=5):
                    record.notes.append("state lock busy")
                if phase is KillPhase.DURING_UNLOAD:
                    action = await path.ask(ActionKind.UNLOAD, 0, f"allocator kill {phase.value}")
                else:
                    action = await path.ask(ActionKind.SCALE_UP, fault.count, f"allocator kill {phase.value}")
                reached, what = await self._find_phase(phase, action)
                killed = path.fleet.kill("a")
            finally:
                if lock is not None:
                    lock.release()
            path.kills.append({"phase": phase.value, "reached": reached, "action": action, "at_s": self.now()})
            found = f"{'in phase' if reached else 'phase MISSED'}: {what}"
            record.notes.append(found if killed else f"{found} (the allocator was not running)")
            await asyncio.sleep(1.0)
            await path.restart(record)
        finally:
            slot.busy = False
        record.notes.append(f"action {await path.wait_action(action, ACTION_WAIT_S)}")

    async def _find_phase(self, phase: KillPhase, action: str) -> tuple[bool, str]:
        """Poll until the action reaches `phase` (True), or passes it or times out (False); say what was seen."""
        path = self.path
        deadline = time.monotonic() + PHASE_TIMEOUT_S
        last = "no server row"
        while time.monotonic() < deadline:
            rows = [r for r in await path.probe.servers() or [] if r.action_id == action]
            processes = set(triton_processes(path.stack.paths.run).values())
            starting = [r for r in rows if r.state == "starting"]
            running = [r for r in rows if r.state == "running"]
            if phase is KillPhase.BEFORE_SPAWN and starting:
                spawned = [r for r in starting if triton_key(r.server_id) in processes]
                if not spawned:
                    return True, f"{starting[0].server_id} starting, no Triton process"
                return False, f"{spawned[0].server_id} already has a Triton process"
            if phase is KillPhase.DURING_START:
                spawned = [r for r in starting if triton_key(r.server_id) in processes]
                if spawned:
                    return True, f"{spawned[0].server_id} starting, its Triton process up"
                if running:
                    return False, f"{running[0].server_id} already running"
            if phase is KillPhase.AFTER_RUNNING and running:
                return True, f"{running[0].server_id} running"
            if phase is KillPhase.DURING_UNLOAD:
                stopping = [r for r in rows if r.state == "stopping"]
                if stopping:
                    return True, f"{stopping[0].server_id} stopping"
                if any(r.state == "released" for r in rows):
                    return False, "server already released"
            if rows:
                last = ", ".join(f"{r.server_id} {r.state}" for r in rows)
            await asyncio.sleep(POLL_S)
        state = await path.probe.action_state(action)
        return False, f"not seen in {PHASE_TIMEOUT_S:.0f} s ({last}; action {state or 'not recorded'})"

    async def _allocator_join(self, fault: Fault, record: Injected) -> None:
        path = self.path
        record.notes.append(await path.settle(want_some=False))
        path.fleet.spawn("b")
        ready = await path.fleet.serving("b", RESTART_TIMEOUT_S)
        record.notes.append("second allocator ready" if ready else "second allocator NOT ready")
        until = time.monotonic() + fault.duration_s
        up = await path.ask(ActionKind.SCALE_UP, fault.count, "two allocators")
        record.notes.append(f"scale-up to {fault.count}: {await path.wait_action(up, max(5.0, fault.duration_s))}")
        down = await path.ask(ActionKind.UNLOAD, 0, "two allocators")
        record.notes.append(f"unload: {await path.wait_action(down, max(5.0, fault.duration_s))}")
        await asyncio.sleep(max(0.0, until - time.monotonic()))
        clean = await path.fleet.terminate("b", 20.0)
        record.notes.append("it left on SIGTERM" if clean else "it did not stop on SIGTERM (killed)")

    async def _control_poison(self, fault: Fault, record: Injected) -> None:
        path = self.path
        kinds = await path.driver.send_poison(path.rng)
        record.notes.append(f"{len(kinds)} records: {', '.join(kinds)}")
        probe = await path.ask(ActionKind.SCALE_UP, fault.count, "probe after the poison")
        record.notes.append(f"probe action (same partition): {await path.wait_action(probe, ACTION_WAIT_S)}")
