"""The demo's models on the emulated fleet, and what the report says about the emulation."""

from __future__ import annotations

from typing import Any

from llmfleet import trace
from services.scaler.domain.capacity import ModelSpec, Reference, capacities

# The trace's two models on the emulated fleet. tinylm computes both models' tokens; the servers
# time each batch as Llama-2-7B on their GPU type (shared.performance), so modelled time, not
# tinylm's CPU compute, sets a server's speed (docs/demo.md says why 7B). One instance per GPU, so
# each instance the scaler asks for is a server the allocator starts. Code (long prompts) prefers
# the H100, conversation the cheaper A100: the run shows two GPU types in two regions.
EMULATED_MODEL = "llama-2-7b"
DEMO_MODELS: dict[str, dict[str, Any]] = {
    "azure-code": {"preferred_gpu": "h100_80gb", "instances_per_gpu": 1, "triton_model": "tinylm",
                   "emulates": EMULATED_MODEL},
    "azure-conversation": {"preferred_gpu": "a100_80gb", "instances_per_gpu": 1, "triton_model": "tinylm",
                           "emulates": EMULATED_MODEL},
}  # fmt: skip
# The most rows tinylm's Triton batches hold (deploy/triton/models/tinylm/config.pbtxt): the
# router's batches of 8 queue up at a busy server and run together, up to this.
SERVER_MAX_BATCH = 64


def scaler_capacity(max_tokens_cap: int, override: float | None = None) -> dict[str, float]:
    """Requests/h per instance the scaler plans each demo model with: `override`, or the performance model's."""
    if override is not None:
        return dict.fromkeys(DEMO_MODELS, override)
    reference = Reference(output_tokens=max_tokens_cap, max_batch=SERVER_MAX_BATCH)
    specs = {model: ModelSpec(model, spec["emulates"], spec["preferred_gpu"]) for model, spec in DEMO_MODELS.items()}
    return {model: round(c.requests_per_hour) for model, c in capacities(specs, reference).items()}


def emulation_note(planned: list[trace.PlannedRequest]) -> str:
    """What tinylm computed and what time was modelled, in the run's own counts."""
    computed = sum(r.max_tokens for r in planned)
    return (
        f"tokens computed by tinylm on the CPU: {computed:,} (each request's max_tokens); time modelled: each batch "
        f"lasted what {EMULATED_MODEL} takes for it on the server's GPU type, for its full prompts "
        f"({sum(r.prompt_tokens for r in planned):,} tokens) and the same {computed:,} output tokens, "
        f"not the trace's {sum(r.trace_output_tokens for r in planned):,}"
    )
