"""The local provisioner talks to the stack's launcher as a program: its JSON answer, or its reason."""

from __future__ import annotations

import json
import sys

import pytest

from services.allocator.adapters.provisioner import LocalProvisioner, ProvisioningError, ServerEndpoint
from services.allocator.domain.planner import Emulation


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


async def test_the_emulated_model_reaches_the_launcher(tmp_path):
    # The stand-in writes the arguments it was given, then answers.
    record = tmp_path / "argv.json"
    script = (
        f"import json, sys; open({str(record)!r}, 'w').write(json.dumps(sys.argv[1:]));"
        ' print(\'{"http_url": "h:1", "metrics_url": "m"}\')'
    )
    await LocalProvisioner(launcher=launcher(script)).start_server("s-1", "r", "h100_80gb", 2, Emulation("llama-2-7b"))
    options = ["--emulates=llama-2-7b", "--quantisation=fp16", "--tensor-parallel=1"]
    assert json.loads(record.read_text()) == ["start", "s-1", "h100_80gb", "r", "8100", *options]
    await LocalProvisioner(launcher=launcher(script)).start_server("s-2", "r", "h100_80gb", 1)
    assert json.loads(record.read_text()) == ["start", "s-2", "h100_80gb", "r", "8100"]
