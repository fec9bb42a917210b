"""Sends one batch of prompts to a Triton server as one inference call (the batch dimension)."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import aiohttp
import numpy as np
import tritonclient.http.aio as triton_http
from tritonclient.http import InferInput, InferRequestedOutput
from tritonclient.utils import InferenceServerException

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
    first_token_ms: float | None = None  # a streamed call: when its first token came


class VariantMissing(Exception):
    """The server has no streaming variant of the model loaded (the caller serves the request unstreamed)."""


OnToken = Callable[[int, str, int], Awaitable[None]]  # (index, text, tokens so far)


class TritonClient:
    """An async client for one Triton server (HTTP; the trace context travels in the headers)."""

    def __init__(self, url: str, timeout_s: float = 60.0) -> None:
        self._client = triton_http.InferenceServerClient(url=url, conn_timeout=timeout_s)
        self._base = url if url.startswith(("http://", "https://")) else f"http://{url}"
        self._session: aiohttp.ClientSession | None = None  # streams only; made on the first, in the loop

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

    async def stream(self, model: str, prompt: Prompt, on_token: OnToken) -> BatchResult:
        """Run one prompt on a decoupled model through Triton's `generate_stream` (SSE), each token to `on_token`.

        HTTP, not gRPC's stream_infer: tritonclient's gRPC extra pins grpcio and protobuf below
        what this project uses, and aiohttp is here already (docs/router.md).
        """
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        body = {"PROMPT": prompt.text, "MAX_TOKENS": prompt.max_tokens, "TEMPERATURE": prompt.temperature}
        body["TOP_P"] = prompt.top_p
        url = f"{self._base}/v2/models/{model}/generate_stream"
        started, first_ms, parts, tokens_in = time.perf_counter(), None, [], 0
        async with self._session.post(url, json=body, headers=inject_trace_headers()) as response:
            if response.status != 200:
                text = await response.text()
                if response.status in (400, 404) and lacks_model_text(text):
                    raise VariantMissing(text)
                raise InferenceServerException(f"generate_stream {model}: {response.status} {text}"[:500])
            async for line in response.content:
                if not line.startswith(b"data:"):
                    continue
                event = json.loads(line[5:])
                if "error" in event:
                    raise InferenceServerException(f"{model}: {event['error']}"[:500])
                if first_ms is None:
                    first_ms = (time.perf_counter() - started) * 1000
                parts.append(str(event.get("TEXT", "")))
                tokens_in = int(event.get("PROMPT_TOKENS", tokens_in))
                await on_token(len(parts) - 1, parts[-1], int(event.get("TOKEN_COUNT", len(parts))))
        if not parts:
            raise InferenceServerException(f"{model}: the stream ended without a token")
        text = "".join(parts)
        elapsed_ms = (time.perf_counter() - started) * 1000
        return BatchResult([Completion(text, len(parts), tokens_in)], elapsed_ms, first_ms)

    async def close(self) -> None:
        """Close the connection pools."""
        await self._client.close()
        if self._session is not None:
            await self._session.close()


def lacks_model_text(text: str) -> bool:
    """True when Triton's error says the model is not there (unknown, not ready, not found)."""
    lowered = text.lower()
    return "unknown model" in lowered or "not ready" in lowered or "not found" in lowered


def _input(name: str, data: np.ndarray, datatype: str) -> InferInput:
    tensor = InferInput(name, list(data.shape), datatype)
    tensor.set_data_from_numpy(data)
    return tensor


def _decode(value: object) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)
