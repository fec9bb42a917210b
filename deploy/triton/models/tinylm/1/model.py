"""tinylm: a tiny byte-level decoder-only transformer, served by Triton's Python backend.

This is an EMULATION for a CPU-only dev machine, not a useful language model. It exists so that
the fleet's router, batcher and scaler talk to a real Triton server running a real autoregressive
model whose cost grows with tokens generated and which gets cheaper per request when batched:

* numpy only; weights are random but drawn from a fixed seed, so every server returns the same
  text for the same greedy request;
* byte-level tokenizer: a BOS token (id 256) then the prompt's UTF-8 bytes, the last
  MAX_CONTEXT tokens kept; the output head scores printable ASCII only, so every generated token
  is exactly one character of TEXT;
* 2 pre-LN transformer layers (d_model 256, 4 heads, GELU MLP), sinusoidal positions, causal
  attention with a KV cache;
* exactly MAX_TOKENS tokens are generated (no early stop), TOKEN_COUNT == MAX_TOKENS; MAX_TOKENS
  must be in [1, 512], else that request alone gets an error; PROMPT_TOKENS is the prompt's byte
  count (before the context cut);
* every request Triton hands to one execute() call runs as ONE numpy batch: prompts are left
  padded and masked, and each decode step is one forward pass for all rows (static batching: the
  batch runs until its longest MAX_TOKENS, as without continuous batching on a GPU);
* greedy when TEMPERATURE <= 0 (the default), else temperature + nucleus (TOP_P) sampling; SEED
  makes a sampled request reproducible, independent of what it was batched with.

Runs with numpy 1.26 (what the Triton 2.51 stubs need) as well as numpy 2.

GPU emulation: the server is launched as one GPU type (LLMFLEET_GPU_TYPE) serving one model size
(LLMFLEET_EMULATED_MODEL, a `shared.performance` model name, at LLMFLEET_EMULATED_QUANTISATION and
LLMFLEET_EMULATED_TENSOR_PARALLEL). Each batch then takes the performance model's time for it,
`profile(gpu, model, quantisation, tp).static_batch_ms(prompt lengths, output tokens)`: the batch's
real prompt lengths in tokens (tinylm's tokens are bytes, so PROMPT_TOKENS, the whole prompt, not
only the bytes tinylm reads) and the tokens it generated. tinylm computes its tokens first, then
sleeps until the modelled time has passed; a batch whose compute took longer is not slowed further.
So Triton's queue and compute metrics show the modelled GPU time, and a server mostly waits. See
emulation.py (the clock, and the log line saying what share of the time was compute).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator

import numpy as np
import triton_python_backend_utils as pb_utils
from emulation import EmulationClock, emulated_profile  # next to this file: the backend puts it on sys.path

VOCAB = 256  # byte values; the output head only ever picks printable ASCII
BOS = 256
D_MODEL, N_HEADS, N_LAYERS, D_FF = 256, 4, 2, 1024
MAX_CONTEXT = 256  # prompt tokens kept (BOS + last 255 bytes)
MAX_NEW_TOKENS = 512
WEIGHT_SEED = 20240601
NEG = np.float32(-1e9)


def _layer_norm(x: np.ndarray) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = x.var(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-5)


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + np.tanh(0.7978845608 * (x + 0.044715 * x * x * x)))  # not x**3: slow for float32


def _sinusoids(length: int, dim: int) -> np.ndarray:
    pos = np.arange(length, dtype=np.float32)[:, None]
    freq = np.exp(-np.log(10000.0) * np.arange(0, dim, 2, dtype=np.float32) / dim)
    table = np.zeros((length, dim), dtype=np.float32)
    table[:, 0::2] = np.sin(pos * freq)
    table[:, 1::2] = np.cos(pos * freq)
    return table


class TinyLM:
    """The numpy model: seeded weights, batched prefill + KV-cached decode."""

    def __init__(self, seed: int = WEIGHT_SEED) -> None:
        rng = np.random.default_rng(seed)

        def dense(fan_in: int, fan_out: int) -> np.ndarray:
            return (rng.standard_normal((fan_in, fan_out)) / np.sqrt(fan_in)).astype(np.float32)

        self.embed = rng.standard_normal((VOCAB + 1, D_MODEL)).astype(np.float32)
        self.layers = [
            {
                "qkv": dense(D_MODEL, 3 * D_MODEL),
                "out": dense(D_MODEL, D_MODEL),
                "ff1": dense(D_MODEL, D_FF),
                "ff2": dense(D_FF, D_MODEL),
            }
            for _ in range(N_LAYERS)
        ]
        self.head = dense(D_MODEL, VOCAB) * np.float32(4.0)  # peaked logits: readable greedy text
        printable = np.zeros(VOCAB, dtype=bool)
        printable[32:127] = True
        self.head_bias = np.where(printable, np.float32(0.0), NEG).astype(np.float32)
        self.positions = _sinusoids(MAX_CONTEXT + MAX_NEW_TOKENS, D_MODEL)

    def _attend(self, x: np.ndarray, layer: dict, cache: np.ndarray, start: int, key_ok: np.ndarray) -> np.ndarray:
        """Causal self-attention of x [B,T,D] at cache slots start..start+T; updates the cache."""
        b, t, _ = x.shape
        dh = D_MODEL // N_HEADS
        qkv = (x.reshape(b * t, D_MODEL) @ layer["qkv"]).reshape(b, t, 3, N_HEADS, dh).transpose(2, 0, 3, 1, 4)
        cache[:, :, :, start : start + t] = qkv[1:]
        end = start + t
        keys, values = cache[0, :, :, :end], cache[1, :, :, :end]
        scores = qkv[0] @ keys.transpose(0, 1, 3, 2) / np.float32(np.sqrt(dh))  # [B,H,T,end]
        allowed = key_ok[:, None, None, :end] & (np.arange(end)[None, :] <= np.arange(start, end)[:, None])[None, None]
        scores = np.where(allowed, scores, NEG)
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        weights = scores / scores.sum(axis=-1, keepdims=True)
        mixed = (weights @ values).transpose(0, 2, 1, 3).reshape(b * t, D_MODEL)
        return (mixed @ layer["out"]).reshape(b, t, D_MODEL)

    def _forward(self, tokens: np.ndarray, pos: np.ndarray, caches: list, start: int, key_ok: np.ndarray) -> np.ndarray:
        """Logits [B,V] for the last of `tokens` [B,T] (positions `pos` [B,T])."""
        b, t = tokens.shape
        x = self.embed[tokens] + self.positions[pos]
        for layer, cache in zip(self.layers, caches, strict=True):
            x = x + self._attend(_layer_norm(x), layer, cache, start, key_ok)
            # 2-D matmuls: one GEMM over all rows (a stacked 3-D matmul runs one GEMV per row)
            hidden = _gelu(_layer_norm(x).reshape(b * t, D_MODEL) @ layer["ff1"])
            x = x + (hidden @ layer["ff2"]).reshape(b, t, D_MODEL)
        return _layer_norm(x[:, -1]) @ self.head + self.head_bias

    def generate(
        self,
        prompts: list[bytes],
        max_tokens: np.ndarray,
        temperature: np.ndarray,
        top_p: np.ndarray,
        seeds: list[int | None],
    ) -> list[bytes]:
        """Generate max_tokens[i] bytes for each prompt, all rows in one batch."""
        steps = int(max_tokens.max())
        out = np.zeros((len(prompts), steps), dtype=np.uint8)
        for step, nxt in self.steps(prompts, steps, temperature, top_p, seeds):
            out[:, step] = nxt
        return [out[i, : max_tokens[i]].tobytes() for i in range(len(prompts))]

    def steps(
        self,
        prompts: list[bytes],
        steps: int,
        temperature: np.ndarray,
        top_p: np.ndarray,
        seeds: list[int | None],
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Yield (step, the token each row picked) for `steps` decode steps, all rows in one batch.

        A generator, so the decoupled variant can send each token as soon as it is picked, and
        the batched variant collects them: both run the very same computation.
        """
        ids = [[BOS, *p[-(MAX_CONTEXT - 1) :]] for p in prompts]
        b, width = len(ids), max(len(r) for r in ids)
        tokens = np.zeros((b, width), dtype=np.int64)
        pad = np.array([width - len(r) for r in ids])
        for i, row in enumerate(ids):
            tokens[i, pad[i] :] = row
        key_ok = np.arange(width + steps)[None, :] >= pad[:, None]
        pos = np.maximum(np.arange(width)[None, :] - pad[:, None], 0)
        dh = D_MODEL // N_HEADS
        caches = [np.zeros((2, b, N_HEADS, width + steps, dh), dtype=np.float32) for _ in self.layers]
        rngs = [np.random.default_rng(None if s is None else int(s) % 2**64) for s in seeds]
        logits = self._forward(tokens, pos, caches, 0, key_ok)
        for step in range(steps):
            nxt = self._pick(logits, temperature, top_p, rngs)
            yield step, nxt
            if step + 1 < steps:
                cur = (pos[:, -1] + step + 1)[:, None]
                logits = self._forward(nxt[:, None], cur, caches, width + step, key_ok)

    @staticmethod
    def _pick(logits: np.ndarray, temperature: np.ndarray, top_p: np.ndarray, rngs: list) -> np.ndarray:
        """Greedy for rows with temperature <= 0, else temperature + nucleus sampling."""
        chosen = logits.argmax(axis=-1)
        sampled = np.flatnonzero(temperature > 0)
        if sampled.size:
            scaled = logits[sampled] / temperature[sampled, None]
            probs = np.exp(scaled - scaled.max(axis=-1, keepdims=True))
            probs /= probs.sum(axis=-1, keepdims=True)
            order = np.argsort(-probs, axis=-1, kind="stable")
            sorted_p = np.take_along_axis(probs, order, axis=-1)
            cum = np.cumsum(sorted_p, axis=-1)
            sorted_p[(cum - sorted_p) >= top_p[sampled, None]] = 0.0  # keep the nucleus (>= 1 token)
            cum = np.cumsum(sorted_p, axis=-1)
            for j, row in enumerate(sampled):
                draw = rngs[row].random() * cum[j, -1]
                chosen[row] = order[j, min(int(np.searchsorted(cum[j], draw, side="right")), VOCAB - 1)]
        return chosen


def _optional(request, name: str, default: float | None, rows: int) -> list:
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None:
        return [default] * rows
    return [v.item() for v in tensor.as_numpy().reshape(-1)]


class TritonPythonModel:
    """Triton entry points: every request of one execute() call becomes one TinyLM batch.

    The same file serves `tinylm` (one response per request) and `tinylm_stream` (its config
    sets `model_transaction_policy { decoupled: true }`: a response per generated token, the
    last one flagged final). Both run the same batched numpy computation, so a streamed text is
    the non-streamed text of the same request.
    """

    def initialize(self, args: dict) -> None:
        self.gpu_type = os.environ.get("LLMFLEET_GPU_TYPE", "cpu")
        self.memory_gb = int(os.environ.get("LLMFLEET_GPU_MEMORY_GB", "0") or 0)
        self.decoupled = pb_utils.using_decoupled_model_transaction_policy(json.loads(args["model_config"]))
        emulated, warning = emulated_profile(self.gpu_type, os.environ)
        if warning:
            pb_utils.Logger.log_warn(warning)
        self.model = TinyLM()
        self.model.generate([b"warm up"], np.array([2]), np.zeros(1, np.float32), np.ones(1, np.float32), [None])
        self.clock = EmulationClock(emulated)
        mode = "streaming (decoupled)" if self.decoupled else "batched"
        pb_utils.Logger.log_info(
            f"tinylm {mode} ready on gpu_type={self.gpu_type} memory_gb={self.memory_gb}: {self.clock}"
        )

    def execute(self, requests: list) -> list | None:
        started = time.perf_counter()
        errors, rows = _read(requests)
        if self.decoupled:
            self._stream(requests, errors, rows, started)
            return None  # decoupled: every response went through its request's sender
        responses: list = [None] * len(requests)
        for index, error in errors.items():
            responses[index] = pb_utils.InferenceResponse(error=pb_utils.TritonError(error))
        if rows:
            texts = self.model.generate(
                [r[1] for r in rows],
                np.array([r[2] for r in rows]),
                np.array([r[3] for r in rows], dtype=np.float32),
                np.clip(np.array([r[4] for r in rows], dtype=np.float32), 1e-6, 1.0),
                [r[5] for r in rows],
            )
            for index in range(len(requests)):
                if responses[index] is not None:
                    continue
                mine = [(row, text) for row, text in zip(rows, texts, strict=True) if row[0] == index]
                outs = [t for _, t in mine]
                responses[index] = _response(outs, [len(t) for t in outs], [len(r[1]) for r, _ in mine])
        self._account(started, rows)
        return responses

    def _stream(self, requests: list, errors: dict[int, str], rows: list, started: float) -> None:
        """Decoupled: a response per token as soon as each step picks it; each request's last one is final.

        A request of the streaming variant holds one prompt (the router sends one per call); a
        request holding several gets its rows' tokens in one response per step. Each step is
        paced to the emulated GPU's time for that many tokens, so the first token comes after
        the modelled prefill and one decode step, not after the whole batch.
        """
        final = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL
        for index, error in errors.items():
            requests[index].get_response_sender().send(
                pb_utils.InferenceResponse(error=pb_utils.TritonError(error)), flags=final
            )
        if not rows:
            return
        senders = {r[0]: requests[r[0]].get_response_sender() for r in rows}
        wanted = np.array([r[2] for r in rows])
        prompt_tokens = [len(r[1]) for r in rows]
        steps = self.model.steps(
            [r[1] for r in rows],
            int(wanted.max()),
            np.array([r[3] for r in rows], dtype=np.float32),
            np.clip(np.array([r[4] for r in rows], dtype=np.float32), 1e-6, 1.0),
            [r[5] for r in rows],
        )
        finished: set[int] = set()
        try:
            for step, picked in steps:
                self.clock.pace(started, prompt_tokens, step + 1)
                for index, sender in senders.items():
                    mine = [j for j, r in enumerate(rows) if r[0] == index and step < r[2]]
                    if not mine:
                        continue
                    texts = [bytes([picked[j]]) for j in mine]
                    response = _response(texts, [step + 1] * len(mine), [prompt_tokens[j] for j in mine])
                    last = all(step + 1 >= r[2] for r in rows if r[0] == index)
                    sender.send(response, flags=final if last else 0)
                    if last:
                        finished.add(index)
        except Exception as error:  # a request must always get its final response, or its client waits for ever
            for index, sender in senders.items():
                if index not in finished:
                    sender.send(pb_utils.InferenceResponse(error=pb_utils.TritonError(f"tinylm: {error}")), flags=final)
            raise
        self._account(started, rows)

    def _account(self, started: float, rows: list) -> None:
        if rows:
            line = self.clock.wait(started, [len(r[1]) for r in rows], max(r[2] for r in rows))
            if line:
                pb_utils.Logger.log_info(line)

    def finalize(self) -> None:
        pb_utils.Logger.log_info("tinylm unloaded")


def _response(texts: list[bytes], counts: list[int], prompt_tokens: list[int]) -> object:
    """One response: a row per prompt of the request (TEXT, TOKEN_COUNT, PROMPT_TOKENS)."""
    return pb_utils.InferenceResponse(
        output_tensors=[
            pb_utils.Tensor("TEXT", np.array([[t] for t in texts], dtype=np.object_)),
            pb_utils.Tensor("TOKEN_COUNT", np.array([[c] for c in counts], dtype=np.int32)),
            pb_utils.Tensor("PROMPT_TOKENS", np.array([[n] for n in prompt_tokens], dtype=np.int32)),
        ]
    )


def _read(requests: list) -> tuple[dict[int, str], list[tuple[int, bytes, int, float, float, int | None]]]:
    """The rows of every request (request index, prompt, max tokens, temperature, top_p, seed), and refusals."""
    errors: dict[int, str] = {}
    rows: list[tuple[int, bytes, int, float, float, int | None]] = []
    for index, request in enumerate(requests):
        prompts = pb_utils.get_input_tensor_by_name(request, "PROMPT").as_numpy().reshape(-1)
        wanted = pb_utils.get_input_tensor_by_name(request, "MAX_TOKENS").as_numpy().reshape(-1)
        n = len(prompts)
        temps = _optional(request, "TEMPERATURE", 0.0, n)
        tops = _optional(request, "TOP_P", 1.0, n)
        seeds = _optional(request, "SEED", None, n)
        if not all(1 <= int(w) <= MAX_NEW_TOKENS for w in wanted):
            errors[index] = f"MAX_TOKENS must be in [1, {MAX_NEW_TOKENS}]"  # that request alone fails
            continue
        for p, w, t, tp, s in zip(prompts, wanted, temps, tops, seeds, strict=True):
            raw = p if isinstance(p, bytes) else str(p).encode()
            rows.append((index, raw, int(w), float(t), float(tp), s))
    return errors, rows
