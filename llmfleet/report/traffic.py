"""The report's traffic sections: requests, latency, throughput and batching, measured from the records."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from llmfleet.report.stats import PEAK_BIN_S, peak_in_window, percentile, rounded
from llmfleet.run_data import ObservedEvent, ReplayRun, RequestRecord
from shared.events import DemandWindowReported

TARGET_MS = 2000.0
STATUSES = ("ok", "rejected", "failed")


def _status_counts(records: Sequence[RequestRecord]) -> dict[str, int]:
    counts = Counter(r.status for r in records)
    return {
        "sent": len(records),
        "ok": counts["ok"],
        "rejected": counts["rejected"],
        "failed": counts["failed"],
        "missing": counts[None],
    }


def requests_section(records: Sequence[RequestRecord], notes: list[str]) -> dict[str, Any]:
    """Sent / ok / rejected / failed / missing, whether they add up, and the top rejection reasons."""
    sent = [r for r in records if r.sent_s is not None]
    section: dict[str, Any] = _status_counts(sent)
    unknown = sum(1 for r in sent if r.status is not None and r.status not in STATUSES)
    section["unknown_status"] = unknown
    section["counts_add_up"] = (
        section["ok"] + section["rejected"] + section["failed"] + section["missing"] == section["sent"]
    )
    section["duplicate_ids"] = len(records) - len({r.request_id for r in records})
    section["not_sent"] = len(records) - len(sent)
    if section["not_sent"]:
        notes.append(f"{section['not_sent']} requests were scheduled but never sent (run stopped early?).")
    if section["missing"]:
        notes.append(f"{section['missing']} sent requests had no result by the end of the drain.")
    reasons = Counter((r.status, r.reason or "(no reason given)") for r in sent if r.status in ("rejected", "failed"))
    section["top_reasons"] = [
        {"status": status, "reason": reason, "count": count} for (status, reason), count in reasons.most_common(5)
    ]
    by_model: dict[str, list[RequestRecord]] = defaultdict(list)
    for record in sent:
        by_model[record.model_id].append(record)
    section["by_model"] = {model: _status_counts(rs) for model, rs in sorted(by_model.items())}
    return section


def _latency_figures(latencies_ms: Sequence[float]) -> dict[str, Any]:
    within = sum(1 for v in latencies_ms if v <= TARGET_MS)
    return {
        "count": len(latencies_ms),
        "p50_ms": rounded(percentile(latencies_ms, 50), 1),
        "p95_ms": rounded(percentile(latencies_ms, 95), 1),
        "p99_ms": rounded(percentile(latencies_ms, 99), 1),
        "max_ms": rounded(max(latencies_ms), 1) if latencies_ms else None,
        "share_within_target": rounded(within / len(latencies_ms), 4) if latencies_ms else None,
    }


def latency_section(records: Sequence[RequestRecord], notes: list[str]) -> dict[str, Any]:
    """End-to-end latency of ok requests (overall and per model) against the 2 s target, and the router's view."""
    ok = [r for r in records if r.status == "ok" and r.latency_s is not None]
    section = _latency_figures([r.latency_s * 1000.0 for r in ok if r.latency_s is not None])
    section["target_ms"] = TARGET_MS
    p95 = section["p95_ms"]
    section["p95_meets_target"] = None if p95 is None else p95 <= TARGET_MS
    if p95 is None:
        notes.append("No ok request with a measured latency: latency figures are null.")
    by_model: dict[str, list[float]] = defaultdict(list)
    for r in ok:
        if r.latency_s is not None:
            by_model[r.model_id].append(r.latency_s * 1000.0)
    section["by_model"] = {model: _latency_figures(values) for model, values in sorted(by_model.items())}
    router = [r.router_total_ms for r in ok if r.router_total_ms is not None]
    section["router_total_ms"] = {
        "count": len(router),
        "p50_ms": rounded(percentile(router, 50), 1),
        "p95_ms": rounded(percentile(router, 95), 1),
    }
    if ok and not router:
        notes.append("No ok result carried the router's own timings: router_total_ms is null.")
    return section


def throughput_section(run: ReplayRun, notes: list[str]) -> dict[str, Any]:
    """Ok requests and tokens per second over the send + drain wall time; the peak 10 s send rate."""
    ok = [r for r in run.records if r.status == "ok"]
    wall = run.send_wall_s + run.drain_wall_s
    output_tokens = sum(r.tokens_out for r in ok)
    prompt_tokens = sum(r.prompt_tokens for r in ok)
    sent_times = [r.sent_s for r in run.records if r.sent_s is not None]
    peak = peak_in_window(sent_times, PEAK_BIN_S)
    section: dict[str, Any] = {
        "wall_s": rounded(wall, 2),
        "send_wall_s": rounded(run.send_wall_s, 2),
        "drain_wall_s": rounded(run.drain_wall_s, 2),
        "output_tokens": output_tokens,
        "prompt_tokens": prompt_tokens,
        "ok_requests_per_s": None,
        "output_tokens_per_s": None,
        "prompt_tokens_per_s": None,
        "sent_requests_per_s": None,
        "peak_10s_sent_per_s": peak / PEAK_BIN_S if sent_times else None,
    }
    if wall <= 0:
        notes.append("Send + drain wall time is zero: rates per second are null.")
        return section
    section["ok_requests_per_s"] = rounded(len(ok) / wall)
    section["output_tokens_per_s"] = rounded(output_tokens / wall, 1)
    section["prompt_tokens_per_s"] = rounded(prompt_tokens / wall, 1)
    if run.send_wall_s > 0:
        section["sent_requests_per_s"] = rounded(len(sent_times) / run.send_wall_s)
    return section


def batching_section(events: Sequence[ObservedEvent], notes: list[str]) -> dict[str, Any] | None:
    """Per model: the router's batches and mean batch size (requests / batches summed over its windows)."""
    totals: dict[str, dict[str, int]] = defaultdict(lambda: {"windows": 0, "requests": 0, "ok": 0, "batches": 0})
    for observed in events:
        window = observed.event
        if isinstance(window, DemandWindowReported):
            total = totals[window.model_id]
            total["windows"] += 1
            total["requests"] += window.requests
            total["ok"] += window.ok
            total["batches"] += window.batches
    if not totals:
        notes.append("No DemandWindowReported came from the router: batching is null.")
        return None
    section: dict[str, Any] = {}
    for model, total in sorted(totals.items()):
        mean_size = total["requests"] / total["batches"] if total["batches"] else None
        section[model] = {**total, "mean_batch_size": rounded(mean_size, 2)}
        if mean_size is None:
            notes.append(f"The router reported no batches for {model}: its mean batch size is null.")
    return section
