"""Sends one batch of prompts to a Triton server as one inference call (the batch dimension)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import tritonclient.http.aio as triton_http
from tritonclient.http import InferInput, InferRequestedOutput

from shared.telemetry import inject_trace_headers


@dataclass(frozen=True)
class Prompt:
    """One row of a batch."""

    text: str
    max_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0


@dataclass(frozen=True)
class Completion:
    """What the model returned for one row."""

    text: str
    tokens_out: int
    tokens_in: int


@dataclass(frozen=True)
class BatchResult:
    """The completions of one batch, in row order, and how long the Triton call took."""

    completions: list[Completion]
    inference_ms: float


class TritonClient:
    """An async client for one Triton server (HTTP; the trace context travels in the headers)."""

    def __init__(self, url: str, timeout_s: float = 60.0) -> None:
        self._client = triton_http.InferenceServerClient(url=url, conn_timeout=timeout_s)

    async def is_ready(self, model: str | None = None) -> bool:
        """True when the server (and the model, if named) answers ready."""
        try:
            if model is None:
                return bool(await self._client.is_server_ready())
            return bool(await self._client.is_model_ready(model))
        except Exception:  # any transport error means "not ready"; the caller decides what to do
            return False

    async def infer(self, model: str, prompts: Sequence[Prompt]) -> BatchResult:
        """Run the prompts as one batch; results come back in the same order."""
        rows = len(prompts)
        inputs = [
            _input("PROMPT", np.array([[p.text.encode()] for p in prompts], dtype=np.object_), "BYTES"),
            _input("MAX_TOKENS", np.array([[p.max_tokens] for p in prompts], dtype=np.int32), "INT32"),
            _input("TEMPERATURE", np.array([[p.temperature] for p in prompts], dtype=np.float32), "FP32"),
            _input("TOP_P", np.array([[p.top_p] for p in prompts], dtype=np.float32), "FP32"),
        ]
        outputs = [InferRequestedOutput(name) for name in ("TEXT", "TOKEN_COUNT", "PROMPT_TOKENS")]
        started = time.perf_counter()
        response = await self._client.infer(model, inputs, outputs=outputs, headers=inject_trace_headers())
        elapsed_ms = (time.perf_counter() - started) * 1000
        texts = response.as_numpy("TEXT").reshape(rows)
        counts = response.as_numpy("TOKEN_COUNT").reshape(rows)
        prompt_tokens = response.as_numpy("PROMPT_TOKENS").reshape(rows)
        completions = [
            Completion(text=_decode(texts[i]), tokens_out=int(counts[i]), tokens_in=int(prompt_tokens[i]))
            for i in range(rows)
        ]
        return BatchResult(completions=completions, inference_ms=elapsed_ms)

    async def close(self) -> None:
        """Close the connection pool."""
        await self._client.close()


def _input(name: str, data: np.ndarray, datatype: str) -> InferInput:
    tensor = InferInput(name, list(data.shape), datatype)
    tensor.set_data_from_numpy(data)
    return tensor


def _decode(value: object) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)
