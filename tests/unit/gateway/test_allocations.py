"""The allocation events the gateway follows, applied to its catalogue."""

from __future__ import annotations

from services.gateway.adapters.allocations import apply
from services.gateway.domain.catalogue import Catalogue
from shared.events import AllocationFailed, ModelLoaded, ModelUnloaded, ServerAllocated, ServerReleased


def test_allocation_events_place_and_remove_models() -> None:
    catalogue = Catalogue({})
    apply(
        catalogue,
        ServerAllocated(
            source="allocator",
            server_id="s1",
            endpoint="h:1",
            metrics_url="http://h:2/metrics",
            region="eu-west-1",
            gpu_type="a100_80gb",
            cost_per_hour=4.1,
        ),
    )
    apply(catalogue, ModelLoaded(source="allocator", server_id="s1", model_id="llama", region="eu-west-1"))
    apply(catalogue, AllocationFailed(source="allocator", model_id="other", region="eu-west-1", reason="full"))
    assert [(m["id"], m["regions"], m["loaded"]) for m in catalogue.listing(0)] == [("llama", ["eu-west-1"], True)]
    apply(catalogue, ModelUnloaded(source="allocator", server_id="s1", model_id="llama", region="eu-west-1"))
    assert not catalogue.knows("llama")
    apply(catalogue, ModelLoaded(source="allocator", server_id="s1", model_id="llama", region="eu-west-1"))
    apply(catalogue, ServerReleased(source="allocator", server_id="s1", region="eu-west-1"))
    assert catalogue.listing(0) == []
