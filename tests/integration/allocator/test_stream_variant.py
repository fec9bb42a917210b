"""The local provisioner loads a model's streaming variant with it, and unloads it with it (real Triton)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from deploy.local import triton
from services.allocator.adapters.provisioner import LocalProvisioner, loaded_models

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]
SERVER = "alloc-stream-t1"


@pytest.fixture(scope="module")
def bare_triton() -> Iterator[str]:
    """A Triton server of this test's own with no model loaded."""
    info = triton.start_server(SERVER, triton.PROFILES["h100_80gb"], models=[], region="us-east-1")
    try:
        yield str(info["http_url"])
    finally:
        triton.stop_server(SERVER)


async def test_loading_tinylm_loads_tinylm_stream_and_unloading_unloads_both(bare_triton: str) -> None:
    provisioner = LocalProvisioner()
    await provisioner.load_model(bare_triton, "echo")  # no streaming variant in the repository: echo alone
    assert await loaded_models(bare_triton) == {"echo"}
    await provisioner.load_model(bare_triton, "tinylm")
    assert await loaded_models(bare_triton) == {"echo", "tinylm", "tinylm_stream"}
    await provisioner.unload_model(bare_triton, "tinylm")
    assert await loaded_models(bare_triton) == {"echo"}
    # A pool server's stop unloads every model it listed READY, the variant too: a second unload is harmless.
    await provisioner.unload_model(bare_triton, "tinylm_stream")
    assert await loaded_models(bare_triton) == {"echo"}
