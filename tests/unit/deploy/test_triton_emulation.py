"""Emulated GPUs: what a local Triton server is told, and the clock that times tinylm's batches as the model."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from deploy.local import triton
from deploy.local.common import REPO_ROOT, StackPaths
from deploy.local.triton_emulation import NO_EMULATION, PROFILES, Emulation, identity, record
from deploy.local.triton_install import server_env
from shared.performance import GPUS, profile


def _emulation_module() -> ModuleType:
    """tinylm's emulation.py, loaded from the model repository as the Python backend loads it."""
    path = REPO_ROOT / "deploy/triton/models/tinylm/1/emulation.py"
    spec = importlib.util.spec_from_file_location("tinylm_emulation", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


emulation = _emulation_module()


def test_every_local_profile_is_a_gpu_the_performance_model_knows():
    assert PROFILES.keys() <= GPUS.keys()


def test_an_emulation_names_a_known_model_precision_and_degree():
    assert Emulation("llama-2-7b", "int8", 2).model == "llama-2-7b"
    for bad in (("no-such-model",), ("llama-2-7b", "fp8"), ("llama-2-7b", "fp16", 0)):
        with pytest.raises(ValueError):
            Emulation(*bad)


def test_the_server_env_tells_tinylm_what_to_emulate_and_where_shared_is(tmp_path: Path):
    paths = StackPaths(cache=tmp_path, run=tmp_path)
    env = server_env(paths, PROFILES["a100_80gb"], Emulation("llama-2-13b", "int4", 2))
    assert env["LLMFLEET_GPU_TYPE"] == "a100_80gb" and env["LLMFLEET_EMULATED_MODEL"] == "llama-2-13b"
    assert (env["LLMFLEET_EMULATED_QUANTISATION"], env["LLMFLEET_EMULATED_TENSOR_PARALLEL"]) == ("int4", "2")
    assert (Path(env["LLMFLEET_SOURCE_ROOT"]) / "shared/performance/__init__.py").exists()
    assert "LLMFLEET_EMULATED_MODEL" not in server_env(paths, PROFILES["a100_80gb"], NO_EMULATION)


def test_a_reused_server_must_stand_for_the_same_gpu_and_model():
    current = record(PROFILES["h100_80gb"], Emulation("llama-2-7b"))
    assert identity(current) == identity(record(PROFILES["h100_80gb"], Emulation("llama-2-7b")))
    assert identity(current) != identity(record(PROFILES["h100_80gb"], Emulation("llama-2-13b")))
    before_emulation = {"gpu_type": "h100_80gb", "memory_gb": 80, "relative_speed": 1.0}
    assert identity(before_emulation) == identity(record(PROFILES["h100_80gb"], NO_EMULATION))


def test_the_launcher_reads_the_emulation_options_and_refuses_unknown_ones(capsys: pytest.CaptureFixture[str]):
    assert triton.main(["start", "s", "a100_80gb", "r", "8100", "--tensor-parallel=2", "--bogus=1"]) == 1
    assert "bogus" in json.loads(capsys.readouterr().out)["error"]
    assert triton.main(["start", "s", "a100_80gb", "r", "8100", "--emulates=gpt-9"]) == 1
    assert "gpt-9" in json.loads(capsys.readouterr().out)["error"]
    assert triton.main(["start", "s", "t4_16gb", "r", "8100"]) == 1
    assert "t4_16gb" in json.loads(capsys.readouterr().out)["error"]
    assert triton.main(["start"]) == 2 and "--emulates" in json.loads(capsys.readouterr().out)["error"]


def test_the_server_times_batches_as_the_emulated_model_on_its_gpu():
    env = {"LLMFLEET_EMULATED_MODEL": "llama-2-7b", "LLMFLEET_EMULATED_TENSOR_PARALLEL": "2"}
    emulated, warning = emulation.emulated_profile("a100_80gb", env)
    assert warning is None and emulated == profile("a100_80gb", "llama-2-7b", "fp16", 2)
    assert emulation.emulated_profile("a100_80gb", {}) == (None, None)  # no model: tinylm's own time
    unknown, warning = emulation.emulated_profile("t4_16gb", {"LLMFLEET_EMULATED_MODEL": "llama-2-7b"})
    assert unknown is None and "t4_16gb" in warning


def test_a_batch_sleeps_to_its_modelled_time_and_never_below_its_compute(monkeypatch: pytest.MonkeyPatch):
    clock = emulation.EmulationClock(profile("h100_80gb", "llama-2-7b"))
    now = [100.0]
    slept: list[float] = []
    monkeypatch.setattr(emulation.time, "perf_counter", lambda: now[0])
    monkeypatch.setattr(emulation.time, "sleep", slept.append)
    modelled = profile("h100_80gb", "llama-2-7b").static_batch_ms([2000, 300], 16) / 1e3
    now[0] = 100.05  # 50 ms of compute
    clock.wait(100.0, [2000, 300], 16)
    assert slept == [pytest.approx(modelled - 0.05)]
    now[0] = 100.0 + modelled + 1.0  # compute longer than modelled: no sleep, counted
    clock.wait(100.0, [2000, 300], 16)
    assert len(slept) == 1 and clock.over == 1 and clock.batches == 2
    assert clock.served_s == pytest.approx(2 * modelled + 1.0) and "computed longer" in str(clock)


def test_without_an_emulated_model_a_batch_takes_its_compute_time(monkeypatch: pytest.MonkeyPatch):
    slept: list[float] = []
    monkeypatch.setattr(emulation.time, "sleep", slept.append)
    clock = emulation.EmulationClock(None)
    assert clock.wait(emulation.time.perf_counter(), [50], 8) is None and slept == []


def test_a_planned_server_asks_for_its_plans_model_configuration_variant():
    from pathlib import Path

    from deploy.local.common import stack_paths
    from deploy.local.triton import _command

    plan = Emulation("llama-2-7b", "int4", 2)
    assert plan.config_name == "int4-tp2" and Emulation().config_name is None
    planned = _command(Path("tritonserver"), stack_paths(), "s", (1, 2, 3), plan)
    assert "--model-config-name=int4-tp2" in planned
    assert not any(a.startswith("--model-config-name") for a in _command(Path("t"), stack_paths(), "s", (1, 2, 3)))
