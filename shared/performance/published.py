"""The published measurements the model is calibrated on and checked against (sources in SOURCES).

Each point is one measured time in milliseconds, with the relative tolerance within which the
calibrated model must reproduce it, and its weight in the fit. docs/performance-model.md says
where each figure is in its source and why each tolerance is what it is.
"""

from __future__ import annotations

from dataclasses import dataclass

SOURCES = {
    "splitwise": "Patel et al., Splitwise, ISCA 2024: Llama-2-70B profiles, public artifact "
    "github.com/Mutinifni/splitwise-sim data/perf_model.csv (medians of the repeated runs)",
    "distserve": "Zhong et al., DistServe, OSDI 2024: fitted latency estimators, github.com/LLMServe/DistServe "
    "simdistserve/estimators/profile_data/profiler-a100-80g.distserve.json",
    "trtllm": "NVIDIA TensorRT-LLM performance tables (docs/source/performance.md, v0.5 low-latency data): "
    "1st-token latency at batch 1",
    "serverlessllm": "Fu et al., ServerlessLLM, OSDI 2024 (arXiv 2401.14351), section 2: loading LLaMA-2-70B with "
    "existing loaders",
    "runai": "Run:ai Model Streamer benchmarks (run.ai whitepaper, Oct 2024; NVIDIA technical blog): "
    "Llama-3-8B loaded by vLLM",
}


@dataclass(frozen=True)
class CitedPoint:
    """One published time: a prefill of `tokens` prompt tokens, or a decode step of `tokens` sequences."""

    source: str
    kind: str  # "prefill" or "decode"
    gpu_type: str
    model: str
    tensor_parallel: int
    tokens: int  # prefill: prompt tokens; decode: sequences in the batch
    ms: float
    kv_tokens: float = 0.0  # decode: KV-cache tokens read by the step
    weight: float = 1.0  # weight in the least-squares fit
    tolerance: float = 0.10  # relative error allowed


def _splitwise() -> list[CitedPoint]:
    """Llama-2-70B, batch-1 prefill and 512-token-prompt decode (mean context 512 + 128/2)."""
    prefill = {  # (gpu, tp): {prompt tokens: ms}
        ("a100_80gb", 8): {512: 94.3, 2048: 274.2, 8192: 1549.8},
        ("h100_80gb", 8): {512: 53.4, 2048: 136.8, 8192: 844.9},
        ("a100_80gb", 4): {2048: 403.3},
        ("a100_80gb", 2): {2048: 688.1},
        ("h100_80gb", 4): {2048: 200.7},
        ("h100_80gb", 2): {2048: 310.3},
    }
    decode = {  # (gpu, tp): {batch: ms per step}
        ("a100_80gb", 8): {1: 44.85, 2: 44.56, 4: 45.79, 8: 46.47, 16: 50.44, 32: 53.02},
        ("h100_80gb", 8): {1: 29.76, 2: 30.26, 4: 31.79, 8: 32.5, 16: 34.17, 32: 38.62},
        ("a100_80gb", 4): {1: 44.99},
        ("a100_80gb", 2): {1: 54.86},
        ("h100_80gb", 4): {1: 29.72},
        ("h100_80gb", 2): {1: 37.0},
    }
    points = []
    for (gpu, tp), by_n in prefill.items():
        weight, tolerance = (1.0, 0.10) if tp == 8 else (0.7, 0.15)
        for n, ms in by_n.items():
            points.append(CitedPoint("splitwise", "prefill", gpu, "llama-2-70b", tp, n, ms, 0.0, weight, tolerance))
    for (gpu, tp), by_b in decode.items():
        weight, tolerance = (1.0, 0.10) if tp == 8 else (0.7, 0.15)
        for b, ms in by_b.items():
            kv = b * 576.0
            points.append(CitedPoint("splitwise", "decode", gpu, "llama-2-70b", tp, b, ms, kv, weight, tolerance))
    return points


# DistServe's fits on an A100-80GB, milliseconds: prefill a + b*sum(N) + c*sum(N^2); decode (batches
# below 95) a + b*K + c*B with K the KV tokens of the batch.
DISTSERVE_FITS = {
    ("opt-13b", 1): ((16.45686, 0.09264751, 6.474786e-06), (19.93470, 0.0006269357, 0.03850698)),
    ("opt-13b", 2): ((13.40270, 0.06234292, 2.226884e-06), (13.29480, 0.0003410922, 0.06296393)),
    ("opt-13b", 4): ((10.96572, 0.03461946, 4.751136e-07), (10.25623, 0.0001878670, 0.03269274)),
    ("opt-66b", 2): ((39.14438, 0.2492994, 2.043458e-05), (48.28802, 0.0009424344, 0.1275502)),
    ("opt-66b", 4): ((26.76512, 0.1375929, 7.561319e-06), (30.76028, 0.0004519476, 0.06328420)),
}


def _distserve() -> list[CitedPoint]:
    """DistServe's estimators evaluated at prompts of 512 and 2048, and batches of 1 and 32 x 1024 tokens."""
    points = []
    for (name, tp), ((pa, pb, pc), (da, db, dc)) in DISTSERVE_FITS.items():
        for n in (512, 2048):
            ms = pa + pb * n + pc * n * n
            points.append(CitedPoint("distserve", "prefill", "a100_80gb", name, tp, n, ms, 0.0, 0.5, 0.50))
        for b in (1, 32):
            kv = b * 1024.0
            ms = da + db * kv + dc * b
            points.append(CitedPoint("distserve", "decode", "a100_80gb", name, tp, b, ms, kv, 0.5, 0.50))
    return points


def _trtllm() -> list[CitedPoint]:
    """TensorRT-LLM's A100 fp16 time to first token (batch 1): LLaMA 7B on 1 GPU, LLaMA 70B on 4."""
    table = {("llama-2-7b", 1): {128: 16.0, 2048: 133.0}, ("llama-2-70b", 4): {128: 47.0, 2048: 377.0}}
    return [
        CitedPoint("trtllm", "prefill", "a100_80gb", name, tp, n, ms, 0.0, 0.5, 0.35)
        for (name, tp), by_n in table.items()
        for n, ms in by_n.items()
    ]


CITED_POINTS: tuple[CitedPoint, ...] = (*_splitwise(), *_distserve(), *_trtllm())


def _held_out() -> list[CitedPoint]:
    """Splitwise measurements NOT used in the fit: other prompt lengths, TP degrees and BLOOM-176B."""
    prefill = {
        ("llama-2-70b", "a100_80gb", 8): {1024: 154.5, 4096: 661.2},
        ("llama-2-70b", "h100_80gb", 8): {1024: 77.9, 4096: 390.3},
        ("llama-2-70b", "a100_80gb", 4): {512: 127.0, 8192: 2278.5},
        ("llama-2-70b", "a100_80gb", 2): {512: 196.9, 8192: 2990.2},
        ("llama-2-70b", "h100_80gb", 4): {512: 59.6, 8192: 953.6},
        ("llama-2-70b", "h100_80gb", 2): {512: 83.8, 8192: 1339.8},
        ("bloom-176b", "a100_80gb", 8): {512: 173.8, 2048: 540.4, 8192: 3593.2},
        ("bloom-176b", "h100_80gb", 8): {512: 75.5, 2048: 253.1, 8192: 1535.4},
    }
    decode = {
        ("llama-2-70b", "a100_80gb", 4): {8: 45.8, 32: 52.35},
        ("llama-2-70b", "a100_80gb", 2): {8: 61.69, 32: 72.19},
        ("llama-2-70b", "h100_80gb", 4): {8: 31.44, 32: 36.88},
        ("llama-2-70b", "h100_80gb", 2): {8: 40.4, 32: 52.3},
        ("bloom-176b", "a100_80gb", 8): {1: 48.76, 32: 65.38},
        ("bloom-176b", "h100_80gb", 8): {1: 36.11, 32: 45.84},
    }
    points = [
        CitedPoint("splitwise", "prefill", gpu, name, tp, n, ms, 0.0, 0.0, 0.40)
        for (name, gpu, tp), by_n in prefill.items()
        for n, ms in by_n.items()
    ]
    points += [
        CitedPoint("splitwise", "decode", gpu, name, tp, b, ms, b * 576.0, 0.0, 0.40)
        for (name, gpu, tp), by_b in decode.items()
        for b, ms in by_b.items()
    ]
    return points


# Out-of-sample checks (weight 0): how far the model is from measurements it was not fitted on.
HELD_OUT_POINTS: tuple[CitedPoint, ...] = tuple(_held_out())

# TensorRT-LLM's H100 figures are FP8 (about twice fp16's tensor throughput), so they are not
# fitted: the fp16 model must come out slower than them, by less than 3x ("several times faster"
# than the A100 is the claim they support).
TRTLLM_H100_FP8_TTFT = {("llama-2-7b", 1): {128: 7.0, 2048: 36.0}, ("llama-2-70b", 4): {128: 26.0, 2048: 109.0}}

# Splitwise's own straight-line summaries of the decode step over batches 1..32 (TP 8): ms = a + b*B.
SPLITWISE_DECODE_LINES = {"a100_80gb": (44.6, 0.28), "h100_80gb": (30.0, 0.27)}


@dataclass(frozen=True)
class CitedLoad:
    """One published weight-load time: `model` (fp16) read from `storage` by a loader, in seconds."""

    source: str
    model: str
    storage: str
    seconds: float


CITED_LOADS: tuple[CitedLoad, ...] = (
    CitedLoad("serverlessllm", "llama-2-70b", "local_nvme", 84.0),  # default PyTorch/Safetensors loaders
    CitedLoad("runai", "llama-3-8b", "network_disk", 47.99),  # vLLM's Safetensors loader, AWS gp3 volume
    CitedLoad("runai", "llama-3-8b", "streamed", 7.53),  # Run:ai Model Streamer, AWS io2 volume
)
