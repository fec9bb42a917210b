"""echo: the tinylm interface with no model compute, for measuring the serving path itself.

TEXT is the prompt's bytes cycled (or cut) to exactly MAX_TOKENS characters ("." for an empty
prompt), TOKEN_COUNT == MAX_TOKENS, PROMPT_TOKENS == the prompt's byte length. TEMPERATURE,
TOP_P and SEED are accepted and ignored. No GPU-speed emulation: this model has no cost to scale.
"""

from __future__ import annotations

import numpy as np
import triton_python_backend_utils as pb_utils


def _echo(prompt: bytes, count: int) -> bytes:
    source = prompt or b"."
    return (source * (count // len(source) + 1))[:count]


class TritonPythonModel:
    """Triton entry points for the echo model."""

    def execute(self, requests: list) -> list:
        responses = []
        for request in requests:
            prompts = pb_utils.get_input_tensor_by_name(request, "PROMPT").as_numpy().reshape(-1)
            wanted = pb_utils.get_input_tensor_by_name(request, "MAX_TOKENS").as_numpy().reshape(-1)
            if (wanted < 1).any():
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError("MAX_TOKENS must be >= 1")))
                continue
            raw = [p if isinstance(p, bytes) else str(p).encode() for p in prompts]
            texts = [_echo(p, int(w)) for p, w in zip(raw, wanted, strict=True)]
            responses.append(
                pb_utils.InferenceResponse(
                    output_tensors=[
                        pb_utils.Tensor("TEXT", np.array([[t] for t in texts], dtype=np.object_)),
                        pb_utils.Tensor("TOKEN_COUNT", wanted.astype(np.int32).reshape(-1, 1)),
                        pb_utils.Tensor("PROMPT_TOKENS", np.array([[len(p)] for p in raw], dtype=np.int32)),
                    ]
                )
            )
        return responses
