"""Model shapes: the fleet's models, the models of the calibration sources, and `ModelShape` for more.

Sizes of open models are their published configurations. The closed models' sizes are NOT
published; the figures below are ASSUMPTIONS taken from public estimates, modelled as dense:
- gpt-3.5-turbo: 20B, the figure in Microsoft's CodeFusion paper (arXiv 2310.17680, Table 1),
  withdrawn by its authors, who said it came from a press estimate. Shaped like GPT-NeoX-20B.
- gpt-4-turbo: 280B, the estimated ACTIVE parameters per token of GPT-4 (a mixture of experts
  estimated at ~1.8T in all; SemiAnalysis, July 2023; 1.76T in arXiv 2412.19260). A dense 280B
  has GPT-4's per-token compute and bandwidth but far less memory than the real mixture.
- claude-3-opus: no estimate has been published; assumed GPT-4 class, the same 280B.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.performance.hardware import KV_BYTES_PER_VALUE


@dataclass(frozen=True)
class ModelShape:
    """A dense decoder: parameters (billions), layers, hidden size, KV heads and head size."""

    params_b: float
    layers: int
    hidden: int
    kv_heads: int
    head_dim: int
    name: str = "custom"

    def __post_init__(self) -> None:
        if min(self.params_b, self.layers, self.hidden, self.kv_heads, self.head_dim) < 0:
            raise ValueError(f"a model shape cannot be negative: {self}")

    @property
    def params(self) -> float:
        """Parameters, as a count."""
        return self.params_b * 1e9

    def kv_bytes_per_token(self, tensor_parallel: int = 1) -> float:
        """KV-cache bytes one token takes on ONE GPU of a `tensor_parallel` group.

        KV heads are split over the group; a GPU never holds less than one head (a GQA model with
        fewer KV heads than GPUs, e.g. 8 heads at TP 16, keeps a copy of a head on each).
        """
        heads = -(-self.kv_heads // tensor_parallel) if self.kv_heads else 0
        return 2 * self.layers * heads * self.head_dim * KV_BYTES_PER_VALUE


MODELS: dict[str, ModelShape] = {
    shape.name: shape
    for shape in (
        # the fleet (services/allocator/fleet.yaml)
        ModelShape(280.0, 120, 12288, 8, 128, "gpt-4-turbo"),  # assumption, see above
        ModelShape(20.0, 44, 6144, 64, 96, "gpt-3.5-turbo"),  # assumption, see above
        ModelShape(280.0, 120, 12288, 8, 128, "claude-3-opus"),  # assumption, see above
        ModelShape(68.98, 80, 8192, 8, 128, "llama-2-70b"),
        ModelShape(13.02, 40, 5120, 40, 128, "llama-2-13b"),
        # deploy/triton/models/tinylm: 2 layers of d_model 256, 4 heads, 1.70M weights
        ModelShape(0.001704, 2, 256, 4, 64, "tinylm"),
        ModelShape(0.0, 0, 0, 0, 0, "echo"),  # no weights, no compute: only the engine's floor
        # models of the calibration sources
        ModelShape(6.74, 32, 4096, 32, 128, "llama-2-7b"),
        ModelShape(8.03, 32, 4096, 8, 128, "llama-3-8b"),
        ModelShape(12.85, 40, 5120, 40, 128, "opt-13b"),
        ModelShape(65.7, 64, 9216, 72, 128, "opt-66b"),
        ModelShape(176.2, 70, 14336, 112, 128, "bloom-176b"),
    )
}
FLEET_MODELS = ("gpt-4-turbo", "gpt-3.5-turbo", "claude-3-opus", "llama-2-70b", "llama-2-13b", "tinylm", "echo")


def model(name: str | ModelShape) -> ModelShape:
    """The model named `name` (a ModelShape passes through)."""
    if isinstance(name, ModelShape):
        return name
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known: {sorted(MODELS)}; or pass a ModelShape") from None
