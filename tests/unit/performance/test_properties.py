"""Invariants of the model: monotone, never under the bandwidth floor, quantisation and TP as documented."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.performance import GPUS, MODELS, TENSOR_PARALLEL, ModelShape, Quantisation, profile
from shared.performance.hardware import COMPUTE_FACTOR

gpus = st.sampled_from(sorted(GPUS))
names = st.sampled_from(sorted(MODELS))
quants = st.sampled_from(list(Quantisation))
tps = st.sampled_from(TENSOR_PARALLEL)
tokens = st.integers(min_value=1, max_value=131_072)
batches = st.integers(min_value=1, max_value=512)
shapes = st.builds(
    ModelShape,
    params_b=st.floats(min_value=0.0, max_value=2000.0),
    layers=st.integers(min_value=0, max_value=200),
    hidden=st.integers(min_value=0, max_value=32768),
    kv_heads=st.integers(min_value=0, max_value=128),
    head_dim=st.integers(min_value=0, max_value=256),
)


@given(gpus, names, quants, tps, tokens, tokens)
def test_longer_prompts_are_never_faster(gpu, name, quant, tp, n, extra):
    p = profile(gpu, name, quant, tp)
    assert p.prefill_ms(n + extra) >= p.prefill_ms(n)


@given(gpus, names, quants, tps, batches, batches, tokens, tokens)
def test_bigger_batches_and_more_kv_tokens_are_never_faster(gpu, name, quant, tp, b, more_b, kv, more_kv):
    p = profile(gpu, name, quant, tp)
    assert p.decode_step_ms(b + more_b, kv) >= p.decode_step_ms(b, kv)
    assert p.decode_step_ms(b, kv + more_kv) >= p.decode_step_ms(b, kv)


@given(gpus, quants, tps, shapes, shapes, tokens, batches)
def test_bigger_models_are_never_faster(gpu, quant, tp, small, grow, n, b):
    """A model at least as big in every dimension never prefills or decodes faster."""
    big = ModelShape(
        small.params_b + grow.params_b,
        small.layers + grow.layers,
        small.hidden + grow.hidden,
        small.kv_heads + grow.kv_heads,
        small.head_dim + grow.head_dim,
    )
    p, q = profile(gpu, small, quant, tp), profile(gpu, big, quant, tp)
    assert q.prefill_ms(n) >= p.prefill_ms(n)
    assert q.decode_step_ms(b, b * n) >= p.decode_step_ms(b, b * n)
    assert q.kv_capacity_tokens <= p.kv_capacity_tokens


def test_the_fleet_models_in_order_of_size_are_in_order_of_speed():
    chain = ["echo", "tinylm", "llama-2-13b", "gpt-3.5-turbo", "llama-2-70b", "gpt-4-turbo"]
    for gpu in GPUS:
        prefill = [profile(gpu, m).prefill_ms(2048) for m in chain]
        decode = [profile(gpu, m).decode_step_ms(8, 8 * 2048) for m in chain]
        assert prefill == sorted(prefill) and decode == sorted(decode), gpu


@given(gpus, names, quants, tps, batches, tokens)
def test_a_decode_step_never_beats_the_memory_bandwidth_floor(gpu, name, quant, tp, b, context):
    """A step reads every weight of its shard and every KV token of the batch at least once."""
    p = profile(gpu, name, quant, tp)
    kv = b * context
    assert p.decode_step_ms(b, kv) >= p.floor_weights_ms + p.floor_kv_ms_per_token * kv
    assert p.prefill_ms(context) >= p.floor_weights_ms


@given(gpus, names, tps)
def test_quantisation_cuts_memory_and_bandwidth_and_stretches_compute(gpu, name, tp):
    fp16, int8, int4 = (profile(gpu, name, q, tp) for q in Quantisation)
    # memory: the seed's -50 / -75 / -87.5% against fp32 (4 bytes), i.e. 1 / 0.5 / 0.25 of fp16
    assert int8.weights_gib == pytest.approx(fp16.weights_gib / 2)
    assert int4.weights_gib == pytest.approx(fp16.weights_gib / 4)
    assert int4.kv_capacity_tokens >= int8.kv_capacity_tokens >= fp16.kv_capacity_tokens
    # decoding one sequence reads fewer weight bytes: faster, whatever the seed's latency factors say
    assert int4.decode_step_ms(1, 1024) <= int8.decode_step_ms(1, 1024) <= fp16.decode_step_ms(1, 1024)
    # compute is stretched by the seed's factors relative to fp16; attention is not quantised
    for q, p in ((Quantisation.INT8, int8), (Quantisation.INT4, int4)):
        assert fp16.prefill_b <= p.prefill_b <= fp16.prefill_b * COMPUTE_FACTOR[q] + 1e-12
        assert fp16.decode_c <= p.decode_c <= fp16.decode_c * COMPUTE_FACTOR[q] + 1e-12
        assert p.prefill_c == fp16.prefill_c


@given(gpus, names, quants, st.sampled_from(TENSOR_PARALLEL[1:]), tokens, batches)
def test_tensor_parallelism_never_speeds_up_more_than_the_gpus_it_adds(gpu, name, quant, tp, n, b):
    """Each GPU holds 1/TP of the weights; all-reduces cost, so GPU-time never shrinks."""
    one, many = profile(gpu, name, quant, 1), profile(gpu, name, quant, tp)
    assert tp * many.prefill_ms(n) >= one.prefill_ms(n) - 1e-9
    assert tp * many.decode_step_ms(b, b * n) >= one.decode_step_ms(b, b * n) - 1e-9
    assert many.kv_capacity_tokens >= one.kv_capacity_tokens


def test_tensor_parallelism_does_speed_up_a_big_model():
    tp2, tp8 = (profile("a100_80gb", "llama-2-70b", "fp16", tp) for tp in (2, 8))
    assert tp8.prefill_ms(8192) < tp2.prefill_ms(8192)
    assert tp8.decode_step_ms(32, 32 * 2048) < tp2.decode_step_ms(32, 32 * 2048)


def test_a_model_that_does_not_fit_has_no_kv_capacity():
    assert not profile("l4_24gb", "llama-2-70b", "fp16", 1).fits
    assert not profile("a100_80gb", "llama-2-70b", "fp16", 1).fits
    assert profile("a100_80gb", "llama-2-70b", "fp16", 2).fits
    assert profile("a100_80gb", "llama-2-70b", "int4", 1).fits


@given(gpus, names, quants, tps, st.lists(st.integers(min_value=0, max_value=32_768), min_size=1, max_size=64))
def test_vectorised_variants_match_the_scalar_ones(gpu, name, quant, tp, lengths):
    p = profile(gpu, name, quant, tp)
    arr = np.array(lengths)
    assert p.prefill_ms_array(arr) == pytest.approx([p.prefill_ms(n) for n in lengths])
    sizes = np.arange(len(lengths))
    assert p.decode_step_ms_array(sizes, arr) == pytest.approx(
        [p.decode_step_ms(int(b), n) for b, n in zip(sizes, lengths, strict=True)]
    )


@given(gpus, names, quants, tps, st.lists(tokens, min_size=1, max_size=16), st.integers(min_value=1, max_value=64))
def test_a_static_batch_costs_its_prefill_and_every_decode_step(gpu, name, quant, tp, lengths, output):
    p = profile(gpu, name, quant, tp)
    steps = [p.decode_step_ms(len(lengths), sum(lengths) + len(lengths) * s) for s in range(1, output)]
    assert p.static_batch_ms(lengths, output) == pytest.approx(p.prefill_batch_ms(lengths) + sum(steps))


def test_prompts_batched_in_one_pass_pay_the_fixed_cost_once():
    p = profile("a100_80gb", "llama-2-13b")
    assert p.prefill_batch_ms([512, 512]) == pytest.approx(2 * p.prefill_ms(512) - p.prefill_a)
    assert p.prefill_batch_ms([]) == 0.0
