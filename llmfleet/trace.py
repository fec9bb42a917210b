"""Request traces: read them, cut a window, compress time, and turn each row into a request.

The format is the Azure LLM inference trace 2023's (`TIMESTAMP,ContextTokens,GeneratedTokens`, one
row per request). Every file of a trace shares one clock, so the files keep their relative timing.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
AZURE_2023 = REPO / "data" / "traces" / "azure_llm_2023"

# Built-in traces: name -> {model id: file}. Code and conversation are served as two models.
BUILTIN_TRACES: dict[str, dict[str, Path]] = {
    "azure-llm-2023": {
        "azure-code": AZURE_2023 / "AzureLLMInferenceTrace_code.csv",
        "azure-conversation": AZURE_2023 / "AzureLLMInferenceTrace_conv.csv",
    },
}

# The synthesised prompt's text: tinylm tokenises bytes, so N ASCII characters are N prompt tokens.
_FILLER = "the quick brown fox jumps over the lazy dog while the fleet routes batches to gpus. "


@dataclass(frozen=True)
class TraceRow:
    """One request of the original trace."""

    model_id: str
    offset_s: float  # seconds since the trace's first request (over all its files)
    context_tokens: int
    generated_tokens: int


@dataclass(frozen=True)
class PlannedRequest:
    """One request the replay will send, and when (seconds after the replay starts)."""

    index: int
    model_id: str
    region: str
    trace_offset_s: float  # from the window start, in trace time
    send_at_s: float
    prompt_tokens: int
    trace_output_tokens: int
    max_tokens: int


def resolve(trace: str) -> dict[str, Path]:
    """A built-in trace name, a CSV file (model id = its stem) or a folder of CSV files."""
    if trace in BUILTIN_TRACES:
        return BUILTIN_TRACES[trace]
    path = Path(trace)
    if path.is_dir():
        files = sorted(path.glob("*.csv"))
    elif path.is_file():
        files = [path]
    else:
        known = ", ".join(BUILTIN_TRACES)
        raise ValueError(f"no trace {trace!r}: give one of {known}, a CSV file or a folder of CSV files")
    if not files:
        raise ValueError(f"no CSV files in {trace}")
    return {f.stem: f for f in files}


def shown_path(path: Path, root: Path) -> str:
    """`path` as the report shows it: relative to `root` when inside it, else absolute.

    A user's trace is usually outside the repository (or given relative to the working folder),
    so neither form may be assumed.
    """
    resolved = path.resolve()
    return str(resolved.relative_to(root.resolve())) if resolved.is_relative_to(root.resolve()) else str(resolved)


def read(files: dict[str, Path]) -> list[TraceRow]:
    """Every row of every file, on one clock starting at the earliest request, in time order."""
    stamped: list[tuple[datetime, str, int, int]] = []
    for model_id, path in files.items():
        with path.open(newline="") as handle:
            for line, row in enumerate(csv.DictReader(handle), start=2):
                try:
                    stamped.append(
                        (_timestamp(row["TIMESTAMP"]), model_id, int(row["ContextTokens"]), int(row["GeneratedTokens"]))
                    )
                except (KeyError, ValueError) as error:
                    raise ValueError(f"{path}:{line}: not a trace row ({error})") from error
    if not stamped:
        raise ValueError("the trace has no rows")
    first = min(s[0] for s in stamped)
    rows = [TraceRow(m, (t - first).total_seconds(), c, g) for t, m, c, g in stamped]
    return sorted(rows, key=lambda r: (r.offset_s, r.model_id))


def _timestamp(text: str) -> datetime:
    # The trace has 7 fractional digits; Python's parser takes at most 6.
    head, _, fraction = text.strip().partition(".")
    return datetime.fromisoformat(f"{head}.{(fraction or '0')[:6].ljust(6, '0')}")


def span_s(rows: Sequence[TraceRow]) -> float:
    """Seconds from the first request to the last."""
    return rows[-1].offset_s - rows[0].offset_s if rows else 0.0


def plan(
    rows: Iterable[TraceRow],
    window_start_s: float,
    window_s: float,
    compression: float,
    max_tokens_cap: int,
    regions: dict[str, float],
    sample: float = 1.0,
) -> list[PlannedRequest]:
    """The requests of [window_start, window_start + window) with compressed send times.

    `max_tokens` is the trace's generated count capped at `max_tokens_cap` (at least 1). A request's
    user region is drawn from `regions` (shares), and whether it is kept at all from `sample` (the
    share replayed, thinning the trace evenly in time), by hashes of its index: a replay repeats.
    """
    if compression <= 0 or window_s <= 0 or max_tokens_cap < 1 or not 0 < sample <= 1:
        raise ValueError("compression, window and cap must be positive, sample in (0, 1]")
    cumulative = _cumulative(regions)
    chosen = [r for r in rows if window_start_s <= r.offset_s < window_start_s + window_s]
    planned = []
    for index, row in enumerate(chosen):
        if sample < 1 and _unit(f"sample-{index}") >= sample:
            continue
        offset = row.offset_s - window_start_s
        planned.append(
            PlannedRequest(
                index=index,
                model_id=row.model_id,
                region=_region(index, cumulative),
                trace_offset_s=offset,
                send_at_s=offset / compression,
                prompt_tokens=row.context_tokens,
                trace_output_tokens=row.generated_tokens,
                max_tokens=max(1, min(row.generated_tokens, max_tokens_cap)),
            )
        )
    return planned


def _cumulative(regions: dict[str, float]) -> list[tuple[float, str]]:
    total = sum(regions.values())
    if not regions or total <= 0 or any(share < 0 for share in regions.values()):
        raise ValueError(f"region shares must be non-negative and not all zero: {regions}")
    running, bounds = 0.0, []
    for region, share in regions.items():
        running += share / total
        bounds.append((running, region))
    return bounds


def _unit(key: str) -> float:
    """A repeatable pseudo-random number in [0, 1) for `key`."""
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _region(index: int, cumulative: list[tuple[float, str]]) -> str:
    point = _unit(str(index))
    return next((region for bound, region in cumulative if point < bound), cumulative[-1][1])


def synthesise_prompt(tokens: int, index: int) -> str:
    """A prompt of exactly `tokens` ASCII characters (tinylm's tokens are bytes); varied per request."""
    if tokens <= 0:
        return ""
    start = index % len(_FILLER)
    text = (_FILLER[start:] + _FILLER * (tokens // len(_FILLER) + 2))[:tokens]
    return text
