"""The local provisioner talks to the stack's launcher as a program: its JSON answer, or its reason."""

from __future__ import annotations

import sys

import pytest

from services.allocator.adapters.provisioner import LocalProvisioner, ProvisioningError, ServerEndpoint


def launcher(script: str) -> tuple[str, ...]:
    """A stand-in launcher: a Python one-liner that answers like `python -m deploy.local.triton`."""
    return (sys.executable, "-c", script)


async def test_a_started_server_is_where_the_launcher_says():
    answer = 'print("installing..."); print(\'{"http_url": "127.0.0.1:8100", "metrics_url": "http://m/metrics"}\')'
    local = LocalProvisioner(launcher=launcher(answer))
    assert await local.start_server("s-1", "r", "a100_80gb", 1) == ServerEndpoint("127.0.0.1:8100", "http://m/metrics")


async def test_the_launchers_reason_becomes_the_provisioning_error():
    refusal = 'import sys; print(\'{"error": "no local emulation profile for GPU type x"}\'); sys.exit(1)'
    with pytest.raises(ProvisioningError, match=r"^no local emulation profile for GPU type x$"):
        await LocalProvisioner(launcher=launcher(refusal)).start_server("s-1", "r", "x", 1)


async def test_a_launcher_that_dies_without_an_answer_is_an_error_too():
    with pytest.raises(ProvisioningError, match="exited with 3"):
        await LocalProvisioner(launcher=launcher("import sys; sys.exit(3)")).stop_server("s-1")
    with pytest.raises(ProvisioningError, match="failed"):
        await LocalProvisioner(launcher=("/nonexistent/launcher",)).stop_server("s-1")
