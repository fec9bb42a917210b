"""A deployment plan is what a real Triton loads: the model-configuration variant of the server's plan.

A server planned at int8 on one GPU starts with `--model-config-name=int8-tp1`; tinylm has that
variant (`configs/int8-tp1.pbtxt`) and loads it, echo has none and loads its default config.
"""

from __future__ import annotations

import json
import urllib.request
import uuid

import pytest

from deploy.local import triton
from deploy.local.triton_emulation import Emulation

pytestmark = pytest.mark.timeout(300)


def config_of(http_url: str, model: str) -> dict:
    with urllib.request.urlopen(f"http://{http_url}/v2/models/{model}/config", timeout=10) as resp:
        return dict(json.loads(resp.read()))


def test_a_planned_server_loads_each_models_variant_for_its_plan_where_there_is_one():
    name = f"pytest-plan-{uuid.uuid4().hex[:6]}"
    plan = Emulation("llama-2-7b", "int8", 1)
    info = triton.start_server(name, triton.PROFILES["a100_80gb"], models=("tinylm", "echo"), emulation=plan)
    try:
        tinylm = config_of(info["http_url"], "tinylm")
        assert tinylm["parameters"]["deployment_plan"]["string_value"] == "int8-tp1"
        assert tinylm["parameters"]["quantisation"]["string_value"] == "int8"
        assert "deployment_plan" not in config_of(info["http_url"], "echo").get("parameters", {})
        assert triton.model_ready(info["http_url"], "tinylm") and triton.model_ready(info["http_url"], "echo")
    finally:
        triton.stop_server(name)
