"""The run's figures from what was recorded, and the human summary printed before the JSON line."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from benchmarks.chaos import poison
from benchmarks.chaos.control_tally import control_passed
from benchmarks.chaos.tally import count_results, count_stalls, passed

if TYPE_CHECKING:
    from benchmarks.chaos.faults import Injector
    from benchmarks.chaos.run import ChaosRun
    from benchmarks.chaos.watch import OffsetWatch

GRACE_S = 30.0


def figures(run: ChaosRun, injector: Injector, watch: OffsetWatch, drained_s: float, t0: float) -> dict[str, Any]:
    """Everything the run measured, as one JSON-ready dict (`passed` is the verdict)."""
    ledger = run.ledger
    counts = count_results(ledger.sent(), ledger.results, frozenset(poison.FORBIDDEN_REPLY_TOPICS), ledger.dead_letters)
    stalls = count_stalls(watch.samples, injector.outages(), GRACE_S)
    routers = run.routers
    request_passed = passed(counts, stalls)
    control = control_figures(run)
    return {
        "seed": run.options.seed,
        "quick": run.options.quick,
        "sent": counts.sent,
        "missing": counts.missing,
        "duplicated": counts.duplicated,
        "failed": counts.failed,
        "poison_answered": counts.poison_answered,
        "poison_sent": counts.poison_sent,
        "poison_answerable": counts.poison_answerable,
        "poison_leaked": counts.poison_leaked,
        "unreadable_poison_sent": counts.unreadable_sent,
        "unreadable_poison_deadlettered": counts.unreadable_deadlettered,
        "max_router_rss_mb": round(routers.max_rss_mb, 1) if routers else 0.0,
        "stalls": stalls.seconds,
        "stall_watched_s": stalls.watched_s,
        "stall_windows": [[round(a, 1), round(b, 1)] for a, b in stalls.windows],
        "duplicated_by_kind": counts.duplicated_by_kind,
        "duplicate_examples": list(counts.duplicate_examples),
        "statuses": counts.statuses,
        "rejection_reasons": counts.rejection_reasons,
        "poison_outcomes": counts.poison_outcomes,
        "unexpected_results": counts.unexpected_results,
        "send_failed": ledger.send_failed,
        "router_exits_unasked": len(routers.unexpected_exits) if routers else 0,
        "router_pids": sum(len(s.pids) for s in routers.slots.values()) if routers else 0,
        "drain_s": round(drained_s, 1),
        **control,
        "faults": [i.as_dict() for i in sorted(injector.injected + _control_injected(run), key=lambda i: i.at_s)],
        "faults_skipped": injector.skipped + (run.control_injector.skipped if run.control_injector else []),
        "run_folder": str(run.folder),
        "request_path_passed": request_passed,
        "control_path_passed": control["control_path_passed"],
        "passed": request_passed and control["control_path_passed"],
    }


def _control_injected(run: ChaosRun) -> list[Any]:
    return list(run.control_injector.injected) if run.control_injector else []


def control_figures(run: ChaosRun) -> dict[str, Any]:
    """The control path's figures (None each, and not passed, when they could not be measured)."""
    found = run.control_figures
    path = run.control
    kills = path.kills if path else []
    common: dict[str, Any] = {
        "allocator_kills": [{"phase": k["phase"], "reached": k["reached"]} for k in kills],
        "allocator_kill_phases_missed": sum(not k["reached"] for k in kills),
        "allocator_exits_unasked": len(path.fleet.unexpected_exits) if path else 0,
        "allocator_pids": sum(len(s.pids) for s in path.fleet.slots.values()) if path else 0,
        "control_actions_published": len(path.driver.published) if path else 0,
        "stuck_after_s": run.options.profile.stuck_after_s,
        "settle_s": run.options.profile.settle_s,
    }
    if found is None:
        none = dict.fromkeys(CONTROL_FIGURES)
        return {**none, **common, "control_error": run.control_error or "not measured", "control_path_passed": False}
    watch = path.watch if path else None
    return {
        "leaked_servers": found.leaked_servers,
        "stuck_actions": found.stuck_actions,
        "gpu_conservation_violations": found.gpu_conservation_violations,
        "duplicate_servers_per_action": found.duplicate_servers_per_action,
        "unfinished_actions": found.unfinished_actions,
        "control_poison_sent": found.poison_sent,
        "control_poison_deadlettered": found.poison_deadlettered,
        **common,
        "gpu_conservation_violations_max_during": watch.max_violations if watch else None,
        "allocator_triton_processes_max": watch.max_processes if watch else None,
        "control_looks": watch.samples if watch else 0,
        "control_look_errors": watch.errors[:3] if watch else [],
        "control_details": found.details,
        "control_path_passed": control_passed(found),
    }


CONTROL_FIGURES = (
    "leaked_servers",
    "stuck_actions",
    "gpu_conservation_violations",
    "duplicate_servers_per_action",
    "unfinished_actions",
    "control_poison_sent",
    "control_poison_deadlettered",
)


def summary(found: dict[str, Any]) -> str:
    """A few lines a person reads before the JSON line."""
    lines = [
        f"chaos run, seed {found['seed']}{' (--quick)' if found['quick'] else ''}: "
        f"{'PASSED' if found['passed'] else 'FAILED'}",
        f"  requests sent {found['sent']:,} (send failures {found['send_failed']}); results by status "
        f"{found['statuses']}",
        f"  missing {found['missing']}, duplicated {found['duplicated']} {found['duplicated_by_kind'] or ''}, "
        f"failed without a deadline {found['failed']}",
        f"  poison: {found['poison_sent']} sent, {found['poison_answered']}/{found['poison_answerable']} answerable "
        f"answered, {found['poison_leaked']} results leaked to forbidden topics, "
        f"{found['unreadable_poison_deadlettered']}/{found['unreadable_poison_sent']} unreadable dead-lettered",
        f"  poison outcomes: {found['poison_outcomes']}",
        f"  stalls {found['stalls']} s (watched {found['stall_watched_s']} s outside outages + {GRACE_S:.0f} s grace)"
        f"{' at ' + str(found['stall_windows']) if found['stall_windows'] else ''}",
        f"  max router RSS {found['max_router_rss_mb']} MB; routers exited unasked {found['router_exits_unasked']}",
        f"  rejections: {found['rejection_reasons']}",
        *_control_lines(found),
        "  faults:",
    ]
    for fault in found["faults"]:
        notes = f" ({fault['notes']})" if "notes" in fault else ""
        lines.append(
            f"    {fault['at_s']:7.1f}-{fault['end_s']:7.1f}s {fault['kind']} {fault.get('detail', '')}{notes}"
        )
    for skipped in found["faults_skipped"]:
        lines.append(f"    skipped {skipped['kind']} (planned at {skipped['planned_s']} s): {skipped['why']}")
    lines.append(f"  elapsed {found.get('elapsed_s', 0):.0f} s; logs under {found['run_folder']}/stack/logs")
    return "\n".join(lines)


def _control_lines(found: dict[str, Any]) -> list[str]:
    """The control path's part of the summary."""
    verdict = "PASSED" if found["control_path_passed"] else "FAILED"
    request = "PASSED" if found["request_path_passed"] else "FAILED"
    lines = [f"  control path (allocator): {verdict}; request path: {request}"]
    if found.get("control_error"):
        lines.append(f"    not measured: {found['control_error']}")
        return lines
    lines += [
        f"    leaked servers {found['leaked_servers']}, stuck actions {found['stuck_actions']} (in progress > "
        f"{found['stuck_after_s']:.0f} s), GPU conservation violations {found['gpu_conservation_violations']} "
        f"(most at once during the run {found['gpu_conservation_violations_max_during']}), duplicate servers per "
        f"action {found['duplicate_servers_per_action']}",
        f"    actions published {found['control_actions_published']}, unfinished {found['unfinished_actions']}; "
        f"control poison dead-lettered {found['control_poison_deadlettered']}/{found['control_poison_sent']}; "
        f"allocator exits unasked {found['allocator_exits_unasked']}",
        f"    kills: {', '.join(k['phase'] + ('' if k['reached'] else ' (MISSED)') for k in found['allocator_kills'])}"
        f"; read {found['settle_s']:.0f} s after the last fault",
        f"    details: {found['control_details']}",
    ]
    return lines
