"""The pool provisioner on a real Triton server that it did not start (as under Compose)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from deploy.local import triton
from services.allocator.adapters.pool_provisioner import PoolProvisioner
from services.allocator.adapters.provisioner import ProvisioningError
from services.allocator.settings import PoolServer

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def pool_server() -> Iterator[PoolServer]:
    name = f"allocator-pool-{uuid.uuid4().hex[:6]}"
    info = triton.start_server(name, triton.PROFILES["a100_80gb"], region="test-pool", base_port=8200)
    try:
        yield PoolServer(
            endpoint=info["http_url"], metrics_url=info["metrics_url"], region="test-pool", gpu_type="a100_80gb"
        )
    finally:
        triton.stop_server(name)


async def test_hands_out_an_idle_server_once_and_takes_it_back(pool_server: PoolServer) -> None:
    pool = PoolProvisioner([pool_server])
    with pytest.raises(ProvisioningError, match="no free server"):
        await pool.start_server("s-0", "test-pool", "h100_80gb", 1)  # no server of that type

    given = await pool.start_server("s-1", "test-pool", "a100_80gb", 1)
    assert given.endpoint == pool_server.endpoint
    assert (await pool.start_server("s-1", "test-pool", "a100_80gb", 1)) == given  # asked again: the same one
    await pool.load_model(given.endpoint, "echo")
    assert await pool.model_ready(given.endpoint, "echo")
    with pytest.raises(ProvisioningError, match="no free server"):
        await pool.start_server("s-2", "test-pool", "a100_80gb", 1)

    # A restarted allocator reads from the server itself that it is serving: not free.
    restarted = PoolProvisioner([pool_server])
    with pytest.raises(ProvisioningError, match="no free server"):
        await restarted.start_server("s-3", "test-pool", "a100_80gb", 1)

    await pool.stop_server("s-1")
    assert not await pool.model_ready(pool_server.endpoint, "echo")
    assert (await restarted.start_server("s-3", "test-pool", "a100_80gb", 1)).endpoint == pool_server.endpoint
