"""This machine's tinylm compute per row and output token, measured once when a demo starts.

The demo's emulated servers sleep to the performance model's batch time unless tinylm's CPU
compute took longer, and on a busy 2-core machine it often does: the simulator's prediction of the
demo's run takes the compute of the machine it runs on as an input, measured here, not fitted.
"""

from __future__ import annotations

import importlib.util
import sys
import time
import types
from pathlib import Path

import numpy as np

from deploy.local.common import REPO_ROOT

TINYLM = REPO_ROOT / "deploy" / "triton" / "models" / "tinylm" / "1"
ROWS, TOKENS, PROMPT_BYTES = 8, 16, 1_000  # a conversation batch as the router sends it (prompts cut to 255)
# docs/demo.md (2026-12-03): 143 ms for that batch on one server of this machine; used where tinylm
# cannot be loaded (its folder missing).
DOCUMENTED_MS_PER_ROW_TOKEN = 143.0 / (ROWS * TOKENS)


def _load_tinylm(folder: Path) -> types.ModuleType:
    """tinylm's module outside Triton: its backend import stubbed (generate never calls it)."""
    sys.modules.setdefault("triton_python_backend_utils", types.ModuleType("triton_python_backend_utils"))
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))  # tinylm imports `emulation` from its own folder, as Triton arranges
    spec = importlib.util.spec_from_file_location("llmfleet_tinylm_probe", folder / "model.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"tinylm not found in {folder}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def measure_ms_per_row_token(repeats: int = 5, folder: Path = TINYLM) -> float:
    """Fastest wall ms per row and output token of tinylm's batch of ROWS x TOKENS on this machine, after a warm-up.

    The fastest, not the median: the machine's speed, not a moment of other work (one median of 3
    read 19 ms where the machine does 0.9); contention during the run is what the prediction lacks.
    """
    try:
        model = _load_tinylm(folder).TinyLM()
    except (ImportError, OSError):
        return DOCUMENTED_MS_PER_ROW_TOKEN
    prompts = [bytes([97 + (i % 26)]) * PROMPT_BYTES for i in range(ROWS)]
    wanted = np.full(ROWS, TOKENS)
    times = []
    for _ in range(repeats + 1):  # the first call warms numpy's buffers up and is dropped
        started = time.perf_counter()
        model.generate(prompts, wanted, np.zeros(ROWS), np.ones(ROWS), [None] * ROWS)
        times.append(time.perf_counter() - started)
    return min(times[1:]) * 1000 / (ROWS * TOKENS)
