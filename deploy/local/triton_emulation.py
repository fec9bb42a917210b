"""What a local Triton server stands for: a GPU type, and the model size its batches are timed as.

tinylm computes its tokens on this CPU, then makes each batch last what the performance model
(`shared.performance`) says that batch takes for `Emulation.model` on the server's GPU type
(deploy/triton/models/tinylm/1/emulation.py). `triton_install.server_env` passes both to the server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.performance import MODELS, Quantisation


@dataclass(frozen=True)
class GpuProfile:
    """The GPU a Triton server stands for: its type (a `shared.performance` GPU type) and memory."""

    gpu_type: str
    memory_gb: int


@dataclass(frozen=True)
class Emulation:
    """The model size a server's batches are timed as (None: tinylm's own compute time)."""

    model: str | None = None  # a shared.performance model name, e.g. "llama-2-7b"
    quantisation: str = "fp16"
    tensor_parallel: int = 1

    def __post_init__(self) -> None:
        if self.model is not None and self.model not in MODELS:
            raise ValueError(f"unknown model to emulate {self.model!r}; known: {sorted(MODELS)}")
        Quantisation(self.quantisation)  # raises ValueError for an unknown one
        if self.tensor_parallel < 1:
            raise ValueError(f"tensor parallelism must be >= 1, got {self.tensor_parallel}")

    @property
    def config_name(self) -> str | None:
        """The model-configuration variant a server of this plan loads (`configs/<name>.pbtxt`), e.g. `int8-tp2`.

        None for a server with no plan (tinylm's own speed). Triton takes a model's default
        `config.pbtxt` when the model has no variant of that name.
        """
        return None if self.model is None else f"{self.quantisation}-tp{self.tensor_parallel}"


NO_EMULATION = Emulation()

# The GPU types the performance model knows; the time a batch takes there comes from it. The CPU
# runs tinylm at its own speed: a batch that computed longer than modelled is not slowed further.
PROFILES: dict[str, GpuProfile] = {
    "h100_80gb": GpuProfile("h100_80gb", 80),
    "a100_80gb": GpuProfile("a100_80gb", 80),
    "l4_24gb": GpuProfile("l4_24gb", 24),
    "v100_32gb": GpuProfile("v100_32gb", 32),
}


def record(profile: GpuProfile, emulation: Emulation) -> dict[str, Any]:
    """What a server stands for, as recorded in the state file."""
    return {
        "gpu_type": profile.gpu_type,
        "memory_gb": profile.memory_gb,
        "emulates": emulation.model,
        "quantisation": emulation.quantisation,
        "tensor_parallel": emulation.tensor_parallel,
    }


def identity(info: dict[str, Any]) -> tuple[Any, ...]:
    """The recorded fields a reused server must match (records from before emulation: fp16, TP 1)."""
    keys = ("gpu_type", "memory_gb", "emulates", "quantisation", "tensor_parallel")
    defaults = {"quantisation": "fp16", "tensor_parallel": 1}
    return tuple(info.get(key, defaults.get(key)) for key in keys)
