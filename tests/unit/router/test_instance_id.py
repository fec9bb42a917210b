"""The router's instance id: unique per replica unless set explicitly."""

from __future__ import annotations

import os
import socket

import pytest

from services.router.settings import RouterSettings


def test_the_pod_name_is_the_instance_id_where_kubernetes_sets_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POD_NAME", "router-7f9c-abcde")
    assert RouterSettings().instance_id == "router-7f9c-abcde"


def test_elsewhere_it_is_the_host_name_and_process_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POD_NAME", raising=False)
    monkeypatch.setenv("HOSTNAME", "box-1")
    assert RouterSettings().instance_id == f"box-1-{os.getpid()}"
    monkeypatch.delenv("HOSTNAME")
    assert RouterSettings().instance_id == f"{socket.gethostname()}-{os.getpid()}"


def test_an_explicit_setting_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POD_NAME", "router-0")
    monkeypatch.setenv("LLMFLEET_ROUTER_INSTANCE_ID", "from-env")
    assert RouterSettings().instance_id == "from-env"
    assert RouterSettings(instance_id="given").instance_id == "given"
