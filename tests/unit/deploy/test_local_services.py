"""The local platform's service records: each service's ports, and the gateway's OpenAI API address."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.local import services
from deploy.local.common import StackPaths
from llmfleet.commands.stack import service_row

pytestmark = pytest.mark.unit

STACK = {
    "kafka": {"bootstrap": "127.0.0.1:9092"},
    "postgres": {"host": "127.0.0.1", "port": 5432, "database": "llmfleet"},
}


def test_every_service_gets_its_own_ports_and_the_gateway_an_http_one(tmp_path: Path) -> None:
    paths = StackPaths(cache=tmp_path / "cache", run=tmp_path / "run")
    taken: list[int] = []
    envs = {s: services._env(s, STACK, "t", {}, paths, taken) for s in services.SERVICES}
    assert "gateway" in services.SERVICES
    assert len(taken) == len(set(taken)) == len(services.SERVICES) + 1
    http = int(envs["gateway"]["LLMFLEET_GATEWAY_HTTP_PORT"])
    assert http in taken and http >= services.GATEWAY_HTTP_BASE_PORT
    assert envs["gateway"]["LLMFLEET_GATEWAY_CONSUMER_GROUP"] == "t-gateway"
    assert not any(key.endswith("_HTTP_PORT") for key in envs["router"])


def test_a_configured_gateway_port_is_kept(tmp_path: Path) -> None:
    paths = StackPaths(cache=tmp_path / "cache", run=tmp_path / "run")
    env = services._env("gateway", STACK, "t", {"LLMFLEET_GATEWAY_HTTP_PORT": "18555"}, paths, [])
    assert env["LLMFLEET_GATEWAY_HTTP_PORT"] == "18555"


def test_the_gateway_is_recorded_and_shown_at_its_api(tmp_path: Path) -> None:
    env = {"LLMFLEET_GATEWAY_METRICS_PORT": "9305", "LLMFLEET_GATEWAY_HTTP_PORT": "8081"}
    record = services._record("gateway", env, 42, tmp_path / "gateway.log")
    assert record["http_port"] == 8081 and record["http_url"] == "http://127.0.0.1:8081/v1"
    assert services._ports(record) == [9305, 8081]
    address, what = service_row(record)
    assert address == "http://127.0.0.1:8081/v1"
    assert "OpenAI API" in what and "http://127.0.0.1:9305/metrics" in what
    router = services._record("router", {"LLMFLEET_ROUTER_METRICS_PORT": "9300"}, 7, tmp_path / "router.log")
    assert "http_url" not in router and service_row(router) == ("http://127.0.0.1:9300/metrics", "service (pid 7)")
