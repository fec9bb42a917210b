"""The served model (deploy/triton/models/tinylm) on a real Triton server: counts, determinism, batching."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import tritonclient.http as httpclient
import tritonclient.http.aio as aiohttpclient
from tritonclient.utils import InferenceServerException

from deploy.local import triton
from deploy.local.triton import load_model
from deploy.local.triton_emulation import Emulation
from shared.performance import profile

pytestmark = pytest.mark.integration

MODEL = "tinylm"
PROMPTS = [f"Request {i}: summarise the fleet's state{'!' * i}".encode() for i in range(8)]


@pytest.fixture(scope="module")
def tinylm(triton_http: str) -> str:
    """The server's HTTP address, with tinylm loaded (explicit model control)."""
    load_model(triton_http, MODEL)
    return triton_http


def _inputs(
    prompts: list[bytes], max_tokens: list[int], temperature: float | None, top_p: float | None, seed: int | None
) -> list[Any]:
    rows = len(prompts)
    tensors: list[tuple[str, str, np.ndarray]] = [
        ("PROMPT", "BYTES", np.array(prompts, dtype=np.object_).reshape(rows, 1)),
        ("MAX_TOKENS", "INT32", np.array(max_tokens, dtype=np.int32).reshape(rows, 1)),
    ]
    if temperature is not None:
        tensors.append(("TEMPERATURE", "FP32", np.full((rows, 1), temperature, dtype=np.float32)))
    if top_p is not None:
        tensors.append(("TOP_P", "FP32", np.full((rows, 1), top_p, dtype=np.float32)))
    if seed is not None:
        tensors.append(("SEED", "INT64", np.full((rows, 1), seed, dtype=np.int64)))
    inputs = []
    for name, datatype, data in tensors:
        tensor = httpclient.InferInput(name, list(data.shape), datatype)
        tensor.set_data_from_numpy(data)
        inputs.append(tensor)
    return inputs


def _outputs(result: Any) -> tuple[list[str], list[int], list[int]]:
    texts = [t.decode() for t in result.as_numpy("TEXT").reshape(-1)]
    return (
        texts,
        result.as_numpy("TOKEN_COUNT").reshape(-1).tolist(),
        result.as_numpy("PROMPT_TOKENS").reshape(-1).tolist(),
    )


def generate(
    url: str,
    prompts: list[bytes],
    max_tokens: int | list[int] = 32,
    temperature: float | None = None,
    top_p: float | None = None,
    seed: int | None = None,
) -> tuple[list[str], list[int], list[int]]:
    """One inference request whose batch dimension holds all `prompts`; (texts, token counts, prompt tokens)."""
    counts = max_tokens if isinstance(max_tokens, list) else [max_tokens] * len(prompts)
    client = httpclient.InferenceServerClient(url, network_timeout=120.0)
    try:
        return _outputs(client.infer(MODEL, _inputs(prompts, counts, temperature, top_p, seed)))
    finally:
        client.close()


def test_every_row_of_a_batch_gets_exactly_max_tokens(tinylm: str) -> None:
    wanted = [1, 5, 8, 13, 21, 32, 40, 64]
    texts, counts, prompt_tokens = generate(tinylm, PROMPTS, wanted)
    assert counts == wanted
    assert [len(text) for text in texts] == wanted  # one printable ASCII character per token
    assert all(text.isprintable() for text in texts)
    assert prompt_tokens == [len(prompt) for prompt in PROMPTS]


async def test_concurrent_requests_each_get_their_own_answer(tinylm: str) -> None:
    client = aiohttpclient.InferenceServerClient(tinylm)
    try:
        wanted = [4 + 3 * i for i in range(8)]

        async def one(i: int) -> tuple[list[str], list[int], list[int]]:
            result = await client.infer(MODEL, _inputs([PROMPTS[i]], [wanted[i]], None, None, None))
            return _outputs(result)

        results = await asyncio.gather(*(one(i) for i in range(8)))
    finally:
        await client.close()
    for i, (texts, counts, prompt_tokens) in enumerate(results):
        assert counts == [wanted[i]]
        assert len(texts[0]) == wanted[i]
        assert prompt_tokens == [len(PROMPTS[i])]  # the dynamic batch was split back to the right requests


def test_greedy_output_is_deterministic(tinylm: str) -> None:
    first, _, _ = generate(tinylm, PROMPTS[:4])
    second, _, _ = generate(tinylm, PROMPTS[:4], temperature=0.0)  # 0 is greedy, like the default
    assert first == second
    assert len(set(first)) > 1  # the text depends on the prompt


def test_seeded_sampling_is_reproducible(tinylm: str) -> None:
    prompts = [PROMPTS[0]] * 4
    first, counts, _ = generate(tinylm, prompts, temperature=1.5, top_p=0.95, seed=7)
    second, _, _ = generate(tinylm, prompts, temperature=1.5, top_p=0.95, seed=7)
    other, _, _ = generate(tinylm, prompts, temperature=1.5, top_p=0.95, seed=8)
    greedy, _, _ = generate(tinylm, prompts)
    assert counts == [32] * 4
    assert first == second
    assert first[0] == first[3]  # the seed, not the row, decides the draw
    assert first != other
    assert first != greedy


def test_max_tokens_out_of_range_is_rejected(tinylm: str) -> None:
    with pytest.raises(InferenceServerException, match="MAX_TOKENS"):
        generate(tinylm, PROMPTS[:1], max_tokens=0)


def test_a_batch_of_eight_costs_well_under_eight_single_requests(tinylm: str) -> None:
    def median_seconds(prompts: list[bytes]) -> float:
        timings = []
        for _ in range(5):
            started = time.perf_counter()
            generate(tinylm, prompts)
            timings.append(time.perf_counter() - started)
        return statistics.median(timings)

    generate(tinylm, PROMPTS)  # warm-up
    single = median_seconds(PROMPTS[:1])
    batch = median_seconds(PROMPTS)
    assert batch / single < 5, f"batch of 8: {batch * 1000:.0f} ms, one request: {single * 1000:.0f} ms"


@pytest.fixture(scope="module")
def emulated_7b() -> Iterator[str]:
    """A server standing for an A100 serving Llama-2-7B: tinylm computes, the performance model times."""
    name = "pytest-emulated-7b"
    info = triton.start_server(
        name, triton.PROFILES["a100_80gb"], [MODEL], base_port=8600, emulation=Emulation("llama-2-7b")
    )
    yield info["http_url"]
    triton.stop_server(name)


def test_an_emulated_gpu_takes_the_modelled_time_for_the_batchs_real_prompts(emulated_7b: str) -> None:
    prompts = [b"x" * 2000, b"y" * 300, b"z" * 900, b""]  # tinylm reads 255 bytes; the model times all
    generate(emulated_7b, prompts, max_tokens=16)  # warm-up
    for max_tokens in (16, 40):
        started = time.perf_counter()
        _, counts, prompt_tokens = generate(emulated_7b, prompts, max_tokens=max_tokens)
        elapsed_ms = (time.perf_counter() - started) * 1000
        modelled_ms = profile("a100_80gb", "llama-2-7b").static_batch_ms(prompt_tokens, max_tokens)
        assert counts == [max_tokens] * 4 and prompt_tokens == [2000, 300, 900, 0]
        # never faster than modelled; the HTTP round trip and tinylm's compute may add a little
        assert modelled_ms <= elapsed_ms < modelled_ms + 150, (elapsed_ms, modelled_ms)
