"""How a model's streaming variant is named: the router streams on it, the allocator loads it with the model.

A streaming variant is the model served as a decoupled Triton model (a response per token), e.g.
`tinylm_stream` for `tinylm`. It is found by name in the model repository; a model without one
is served unstreamed (docs/router.md, Streaming).
"""

from __future__ import annotations

STREAM_SUFFIX = "_stream"


def stream_variant(triton_model: str) -> str:
    """The Triton name of `triton_model`'s streaming variant."""
    return triton_model + STREAM_SUFFIX
