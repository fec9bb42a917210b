"""The reconciler: every `reconcile_interval_s` (and at start), on one replica, mend what the records
and the running fleet disagree on.

A round, in order:
1. actions in progress that no worker holds and that ran out of time or attempts are rolled back
   (failed, with AllocationFailed); what they left half done is mended by the steps below;
2. the records are read, then the provisioner is asked what exists (in that order: a server
   started after the read was planned before it, so its row is in the read);
3. `domain.reconciliation` compares them: servers gone (released, GPUs back, their models'
   instances replaced by a new action), servers left starting or stopping (stopped), unowned
   processes (stopped after a grace period), placements that differ from what a server has
   loaded (reloaded, confirmed, dropped or unloaded);
4. GPUs held by servers that are not live go back to their pools, and the books are checked:
   free + reserved + allocated == total in every pool, rows and counters alike.

Every repair commits its state change with its events (the usual allocation event, and a
FleetRepaired with the reason) and counts on `llmfleet_allocator_repairs{repair}`. A repair that
fails is logged and tried again next round; one failing never stops the others.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field

from services.allocator.adapters.provisioner import ProvisioningError, server_answers
from services.allocator.domain.reconciliation import (
    ConfirmPlacement,
    DropPlacement,
    FinishStop,
    Limits,
    MarkHealthy,
    MarkUnhealthy,
    OrphanClock,
    ReloadPlacement,
    Repair,
    ReplaceDraining,
    RollBackAction,
    ServerGone,
    ServerOnRecord,
    StopOrphan,
    Undrain,
    UnloadStray,
    conservation_violations,
    reconcile_servers,
    retirements,
    stuck_actions,
    unowned,
)
from services.allocator.domain.scaling import instances_of
from services.allocator.use_cases import spot
from services.allocator.use_cases.allocator import Allocator
from services.allocator.use_cases.planning import fail_action, plan_action
from services.allocator.use_cases.provisioning import bounded, load_ready
from shared.events import (
    ActionKind,
    AlertChanged,
    AlertState,
    FleetRepaired,
    ModelLoaded,
    ModelUnloaded,
    ScalingActionRequested,
    ServerReleased,
    Severity,
)
from shared.leader import leading

log = logging.getLogger(__name__)
LOCK = "allocator.reconciler"
CONSUMER = "allocator.reconciler"  # the inbox name of the actions the reconciler plans itself
RETIRE_BATCH = 100  # registered servers asked per round (a dead one refuses at once; a lost host takes 2 s)


@dataclass
class Reconciler:
    """The reconciler's memory between rounds: when each unowned process was first seen."""

    allocator: Allocator
    orphans: OrphanClock = field(default_factory=OrphanClock)
    last_violations: tuple[str, ...] = ()

    def limits(self) -> Limits:
        """The settings' patience."""
        s = self.allocator.settings
        return Limits(s.action_timeout_s, s.max_action_attempts, s.dead_after_s, s.orphan_grace_s)

    async def round(self) -> dict[str, int] | None:
        """One reconciliation on the leader replica; repairs made by kind (None: another replica leads)."""
        async with leading(self.allocator.sessions, LOCK) as leader:
            if not leader:
                return None
            return await self.reconcile()

    async def reconcile(self) -> dict[str, int]:
        """One reconciliation (the caller leads); repairs made by kind."""
        began = time.monotonic()
        made = await self._mend()
        self.allocator.metrics.reconcile_seconds.observe(time.monotonic() - began)
        if made:
            log.info("reconciler repaired %s", made)
        await self.allocator.publish()
        return made

    async def _mend(self) -> dict[str, int]:
        allocator, limits, made = self.allocator, self.limits(), dict[str, int]()
        async with allocator.units.transaction() as repo:
            now = await repo.now()
            actions = await repo.actions_in_progress()
        for rollback in stuck_actions(actions, now, limits):
            await self._apply(rollback, made)
        prefix = allocator.settings.server_prefix
        async with allocator.units.transaction() as repo:
            recorded = await repo.servers_on_record(prefix)
        observed = await bounded(allocator, "listing the servers", allocator.provisioner.observe(prefix))
        repairs: list[Repair] = list(reconcile_servers(recorded, observed, now, limits))
        overdue = self.orphans.overdue(unowned(observed.values(), recorded), now, limits.orphan_grace_s)
        repairs += [StopOrphan(sid, f"runs with no live record for {limits.orphan_grace_s:.0f} s") for sid in overdue]
        for repair in repairs:
            await self._apply(repair, made)
        await self._books(made)
        await self._retire(made)
        return made

    async def _apply(self, repair: Repair, made: dict[str, int]) -> None:
        """Carry out one repair; a failure is logged and left for the next round."""
        try:
            kind = await self._carry_out(repair)
        except Exception:
            log.warning("repair %s failed; next round tries again", repair, exc_info=True)
            return
        if kind is not None:
            made[kind] = made.get(kind, 0) + 1
            self.allocator.metrics.repairs.labels(kind).inc()

    async def _carry_out(self, repair: Repair) -> str | None:
        """Do the repair; the kind it counts as (None: bookkeeping, not a repair)."""
        if isinstance(repair, MarkUnhealthy | MarkHealthy):
            async with self.allocator.units.transaction() as repo:
                await repo.mark_unhealthy(repair.server_id, since=isinstance(repair, MarkUnhealthy))
            return None
        if isinstance(repair, RollBackAction):
            return await self._roll_back(repair)
        if isinstance(repair, ServerGone):
            return await self._server_gone(repair)
        if isinstance(repair, FinishStop):
            return await self._finish_stop(repair.server, repair.reason, repair.kind)
        if isinstance(repair, Undrain):
            async with self.allocator.units.transaction() as repo:
                await repo.undrain(repair.server.server_id, repair.reason)
                abandoned = FleetRepaired(
                    source="allocator", repair="move_abandoned", reason=repair.reason, region=repair.server.region,
                    server_id=repair.server.server_id,
                )  # fmt: skip
                await repo.announce(abandoned, key=repair.server.server_id)
            return "move_abandoned"
        if isinstance(repair, ReplaceDraining):
            await spot.replace(self.allocator, repair.server)  # idempotent: planned once by action id
            return None
        if isinstance(repair, StopOrphan):
            await bounded(
                self.allocator, f"stopping {repair.server_id}", self.allocator.provisioner.stop_server(repair.server_id)
            )
            await self._announce(
                FleetRepaired(
                    source="allocator", repair="orphan_stopped", reason=repair.reason, server_id=repair.server_id
                )
            )
            return "orphan_stopped"
        if isinstance(repair, ReloadPlacement | ConfirmPlacement):
            return await self._settle_placement(repair)
        if isinstance(repair, DropPlacement):
            return await self._drop_placement(repair)
        return await self._unload_stray(repair)

    async def _announce(self, *events: FleetRepaired | ServerReleased | ModelLoaded | ModelUnloaded) -> None:
        async with self.allocator.units.transaction() as repo:
            for event in events:
                await repo.announce(
                    event, key=getattr(event, "model_id", None) or getattr(event, "server_id", "") or ""
                )

    async def _roll_back(self, repair: RollBackAction) -> str:
        a = repair.action
        reason = f"rolled back by the reconciler: {repair.reason}"
        async with self.allocator.units.transaction() as repo:
            await fail_action(self.allocator, repo, a.action_id, a.model_id, a.region, reason)
            repaired = FleetRepaired(
                source="allocator", repair="action_rolled_back", reason=reason, region=a.region,
                model_id=a.model_id, action=a.action_id,
            )  # fmt: skip
            await repo.announce(repaired, key=a.model_id)
        return "action_rolled_back"

    async def _finish_stop(self, server: ServerOnRecord, reason: str, kind: str) -> str:
        """Stop the server's process, then record it gone: placements forgotten, GPUs back, released."""
        allocator = self.allocator
        await bounded(allocator, f"stopping {server.server_id}", allocator.provisioner.stop_server(server.server_id))
        async with allocator.units.transaction() as repo:
            await repo.forget_placements(server.server_id)
            await repo.mark_server(server.server_id, "failed", reason=reason[:2000])
            await repo.return_gpus([server.server_id])
            await repo.announce(
                ServerReleased(source="allocator", server_id=server.server_id, region=server.region),
                key=server.server_id,
            )
            await repo.announce(
                FleetRepaired(
                    source="allocator", repair=kind, reason=reason, region=server.region, server_id=server.server_id
                ),
                key=server.server_id,
            )
        return kind

    async def _server_gone(self, repair: ServerGone) -> str:
        """Release a server that is gone, then ask for its models' instances again (a high-priority action each)."""
        server = repair.server
        async with self.allocator.units.transaction() as repo:
            servers, _ = await repo.live_servers(self.allocator.settings.server_prefix)
        wanted = {
            p.model_id: instances_of(p.model_id, server.region, servers)
            for p in server.placements
            if p.state in ("ready", "loading")
        }
        try:
            kind = await self._finish_stop(server, f"gone: {repair.reason}", "server_gone")
        except ProvisioningError as error:
            # The process may still hold its GPUs: keep them; the orphan path stops it later.
            log.warning("stopping gone server %s failed (%s); recording it gone anyway", server.server_id, error)
            async with self.allocator.units.transaction() as repo:
                await repo.forget_placements(server.server_id)
                await repo.mark_server(server.server_id, "failed", reason=f"gone: {repair.reason}"[:2000])
                await repo.return_gpus([server.server_id])
                await repo.announce(
                    ServerReleased(source="allocator", server_id=server.server_id, region=server.region),
                    key=server.server_id,
                )
            kind = "server_gone"
        for model_id, target in wanted.items():
            await self._replace(model_id, server.region, target, server.server_id)
        return kind

    async def _replace(self, model_id: str, region: str, target: int, lost_on: str) -> None:
        """Plan an action bringing the model back to `target` instances in the region; the worker carries it out."""
        request = ScalingActionRequested(
            source="allocator", action_id=f"replace-{lost_on}-{uuid.uuid4().hex[:6]}", model_id=model_id,
            region=region, kind=ActionKind.SCALE_UP, current_instances=0, target_instances=target,
            priority="high", reason=f"replaces the instances lost with {lost_on}", rule="reconciler",
        )  # fmt: skip
        if await plan_action(self.allocator, CONSUMER, request):
            self.allocator.work_ready.set()

    async def _settle_placement(self, repair: ReloadPlacement | ConfirmPlacement) -> str:
        """Load the model again (or find it loaded), then record it ready and say so."""
        p, server_id = repair.placement, repair.server_id
        region, endpoint = await self._where(server_id)
        if isinstance(repair, ReloadPlacement):
            try:
                await load_ready(self.allocator, endpoint, p.triton_model)
            except ProvisioningError as error:
                return await self._drop_placement(
                    DropPlacement(server_id, region, p, f"{repair.reason}; reloading failed: {error}")
                )
        async with self.allocator.units.transaction() as repo:
            await repo.mark_placement(server_id, p.model_id, "ready")
            loaded = ModelLoaded(
                source="allocator", server_id=server_id, model_id=p.model_id, region=region,
                triton_model=p.triton_model, instances=p.instances,
            )  # fmt: skip
            await repo.announce(loaded, key=p.model_id)
            kind = "placement_reloaded" if isinstance(repair, ReloadPlacement) else "placement_confirmed"
            repaired = FleetRepaired(
                source="allocator",
                repair=kind,
                reason=repair.reason,
                region=region,
                server_id=server_id,
                model_id=p.model_id,
            )
            await repo.announce(repaired, key=p.model_id)
        return kind

    async def _where(self, server_id: str) -> tuple[str, str | None]:
        async with self.allocator.units.transaction() as repo:
            for s in await repo.servers_on_record(self.allocator.settings.server_prefix):
                if s.server_id == server_id:
                    return s.region, s.endpoint
        raise ProvisioningError(f"{server_id} is no longer live")

    async def _drop_placement(self, repair: DropPlacement) -> str:
        """Unload the model (if the server answers) and forget the placement; say it is gone."""
        p, server_id = repair.placement, repair.server_id
        _, endpoint = await self._where(server_id)
        if endpoint is not None:
            unloading = self.allocator.provisioner.unload_model(endpoint, p.triton_model)
            await bounded(self.allocator, f"unloading {p.triton_model} on {server_id}", unloading)
        async with self.allocator.units.transaction() as repo:
            await repo.forget_placements(server_id, p.model_id)
            unloaded = ModelUnloaded(source="allocator", server_id=server_id, model_id=p.model_id, region=repair.region)
            await repo.announce(unloaded, key=p.model_id)
            repaired = FleetRepaired(
                source="allocator", repair="placement_dropped", reason=repair.reason, region=repair.region,
                server_id=server_id, model_id=p.model_id,
            )  # fmt: skip
            await repo.announce(repaired, key=p.model_id)
        return "placement_dropped"

    async def _unload_stray(self, repair: UnloadStray) -> str:
        region, endpoint = await self._where(repair.server_id)
        if endpoint is None:
            raise ProvisioningError(f"{repair.server_id} has no endpoint on record")
        unloading = self.allocator.provisioner.unload_model(endpoint, repair.triton_model)
        await bounded(self.allocator, f"unloading {repair.triton_model} on {repair.server_id}", unloading)
        await self._announce(
            FleetRepaired(
                source="allocator",
                repair="model_unloaded",
                reason=repair.reason,
                region=region,
                server_id=repair.server_id,
            )
        )
        return "model_unloaded"

    async def _retire(self, made: dict[str, int]) -> None:
        """Release servers others registered that have not answered for `retire_after_s`."""
        async with self.allocator.units.transaction() as repo:
            registered = await repo.registered_servers(RETIRE_BATCH)
            now = await repo.now()
        if not registered:
            return
        answers = await asyncio.gather(*(server_answers(s.endpoint) for s in registered))
        answering = {s.server_id: ok for s, ok in zip(registered, answers, strict=True)}
        limit = self.allocator.settings.retire_after_s
        decision = retirements(registered, answering, now, limit)
        async with self.allocator.units.transaction() as repo:
            await repo.mark_unanswered(list(decision.unanswered), since=True)
            await repo.mark_unanswered(list(decision.answered), since=False)
            for server in decision.retire:
                await repo.forget_registered(server.server_id)
                released = ServerReleased(source="allocator", server_id=server.server_id, region=server.region)
                await repo.announce(released, key=server.server_id)
                reason = f"registered by another party, not answering at {server.endpoint} for over {limit:.0f} s"
                retired = FleetRepaired(
                    source="allocator", repair="server_retired", reason=reason, region=server.region,
                    server_id=server.server_id,
                )  # fmt: skip
                await repo.announce(retired, key=server.server_id)
        if decision.retire:
            made["server_retired"] = made.get("server_retired", 0) + len(decision.retire)
            self.allocator.metrics.repairs.labels("server_retired").inc(len(decision.retire))

    async def _books(self, made: dict[str, int]) -> None:
        """Return GPUs leaked to servers that are not live, then check every pool's books balance."""
        async with self.allocator.units.transaction() as repo:
            strays = await repo.stray_gpu_holders()
            if strays:
                returned = await repo.return_gpus(strays)
                reason = f"{returned} GPUs held by {len(strays)} servers that are not live: {', '.join(strays[:5])}"
                await repo.announce(
                    FleetRepaired(source="allocator", repair="gpus_returned", reason=reason), key="gpus"
                )
            violations = tuple(conservation_violations(await repo.pool_accounts()))
        if strays:
            made["gpus_returned"] = made.get("gpus_returned", 0) + 1
            self.allocator.metrics.repairs.labels("gpus_returned").inc()
        self.allocator.metrics.conservation_violations.set(len(violations))
        if violations != self.last_violations:
            await self._alert(violations)
        self.last_violations = violations

    async def _alert(self, violations: tuple[str, ...]) -> None:
        """Fire (or resolve) the `gpu_conservation` alert: not mended here, as which side is right needs a person."""
        firing = bool(violations)
        message = "; ".join(violations)[:2000] if firing else "the GPU books balance again"
        if firing:
            log.error("GPU books do not balance: %s", message)
        alert = AlertChanged(
            source="allocator", alert_id="allocator.gpu_conservation", rule="gpu_conservation",
            severity=Severity.CRITICAL, state=AlertState.FIRING if firing else AlertState.RESOLVED,
            value=float(len(violations)), threshold=0.0, scope={"service": "allocator"}, message=message,
        )  # fmt: skip
        async with self.allocator.units.transaction() as repo:
            await repo.raise_alert(alert)
            if firing:
                broken = FleetRepaired(source="allocator", repair="gpu_accounting_broken", reason=message)
                await repo.announce(broken, key="gpus")
