"""The emulated GPU's clock: each batch lasts what the performance model says it takes on that GPU.

`emulated_profile` reads the server's environment: LLMFLEET_EMULATED_MODEL (a `shared.performance`
model name; unset: no emulation), LLMFLEET_EMULATED_QUANTISATION, LLMFLEET_EMULATED_TENSOR_PARALLEL
and LLMFLEET_SOURCE_ROOT, the folder holding `shared/` (the backend stub's Python ignores
PYTHONPATH). Without an emulated model, or on a GPU type the model does not know, a batch takes what
tinylm's compute takes on this CPU. No Triton imports here, so the clock is unit-tested directly.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shared.performance import Profile

LOG_EVERY_S = 30.0  # how often the log says what share of the served time was compute


def emulated_profile(gpu_type: str, env: Mapping[str, str]) -> tuple[Profile | None, str | None]:
    """The performance model's profile of the emulated model on `gpu_type` (None: compute time only), and a warning."""
    name = env.get("LLMFLEET_EMULATED_MODEL", "")
    if not name:
        return None, None
    root = env.get("LLMFLEET_SOURCE_ROOT", "")
    if root and root not in sys.path:
        sys.path.append(root)
    from shared.performance import GPUS, profile  # after the path is set

    if gpu_type not in GPUS:
        return None, f"no performance model of GPU type {gpu_type}: batches take tinylm's compute time"
    quantisation = env.get("LLMFLEET_EMULATED_QUANTISATION", "") or "fp16"
    tensor_parallel = int(env.get("LLMFLEET_EMULATED_TENSOR_PARALLEL", "") or 1)
    return profile(gpu_type, name, quantisation, tensor_parallel), None


class EmulationClock:
    """Makes each batch last its modelled time, and keeps the share of it that was tinylm's compute."""

    def __init__(self, profile: Profile | None) -> None:
        self.profile = profile
        self.batches = self.over = 0
        self.compute_s = self.served_s = 0.0
        self.logged_at = time.monotonic()

    def modelled_s(self, prompt_tokens: list[int], output_tokens: int) -> float:
        """Seconds the emulated GPU takes for a static batch of these prompts and `output_tokens` each."""
        return 0.0 if self.profile is None else self.profile.static_batch_ms(prompt_tokens, output_tokens) / 1e3

    def pace(self, started: float, prompt_tokens: list[int], tokens_so_far: int) -> None:
        """Streaming: sleep until the batch begun at `started` has lasted its modelled time for that many tokens."""
        modelled = self.modelled_s(prompt_tokens, tokens_so_far)
        late = modelled - (time.perf_counter() - started)
        if late > 0:
            time.sleep(late)

    def wait(self, started: float, prompt_tokens: list[int], output_tokens: int) -> str | None:
        """Sleep until the batch begun at `started` (perf_counter) has lasted its modelled time; maybe a log line."""
        compute = time.perf_counter() - started
        modelled = self.modelled_s(prompt_tokens, output_tokens)
        if modelled > compute:
            time.sleep(modelled - compute)
        self.batches += 1
        self.over += compute > modelled
        self.compute_s += compute
        self.served_s += max(modelled, compute)
        if self.profile is None or time.monotonic() - self.logged_at < LOG_EVERY_S:
            return None
        self.logged_at = time.monotonic()
        return f"emulation: {self}"

    def __str__(self) -> str:
        if self.profile is None:
            return "no emulated model: batches take tinylm's compute time on this CPU"
        p, share = self.profile, self.compute_s / self.served_s if self.served_s else 0.0
        return (
            f"emulating {p.model} {p.quantisation} tp={p.tensor_parallel} on {p.gpu_type}; {self.batches} batches, "
            f"compute {self.compute_s:.1f} s of {self.served_s:.1f} s served ({share:.0%}), "
            f"{self.over} computed longer than modelled"
        )
