"""A model's streaming variant (`<triton name>_stream`) lives with the model: the reconciler keeps it."""

from __future__ import annotations

from services.allocator.use_cases.reconciling import Reconciler
from shared.streaming import stream_variant
from tests.unit.allocator.test_control_path import make_allocator, repairs, running_echo


def test_the_streaming_variant_of_a_model_is_its_name_with_the_suffix() -> None:
    assert stream_variant("tinylm") == "tinylm_stream"


async def test_the_reconciler_keeps_a_placed_models_streaming_variant_and_unloads_other_strays() -> None:
    allocator, uow = make_allocator()
    await running_echo(allocator)
    endpoint = allocator.provisioner.running["t-test-1-00"].endpoint
    allocator.provisioner.loaded[endpoint] |= {"echo_stream", "tinylm_stream"}  # tinylm is not placed here
    await Reconciler(allocator).reconcile()
    assert allocator.provisioner.loaded[endpoint] == {"echo", "echo_stream"}
    assert repairs(uow) == ["model_unloaded"]  # tinylm_stream only
