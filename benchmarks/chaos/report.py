"""The run's figures from what was recorded, and the human summary printed before the JSON line."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from benchmarks.chaos import poison
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
        "faults": [i.as_dict() for i in injector.injected],
        "faults_skipped": injector.skipped,
        "run_folder": str(run.folder),
        "passed": passed(counts, stalls),
    }


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
