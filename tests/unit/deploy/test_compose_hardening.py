"""deploy/compose.yaml as the issue's read asked: reachable Kafka, Triton by default, no silent
secrets, nothing open beyond 127.0.0.1, health checks and grace periods, durable observability."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.local.postgres import SERVICES
from services.router.settings import RouterSettings

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
REQUIRED = re.compile(r"\$\{([A-Z0-9_]+):\?[^}]+\}")
LONG_RUNNING = [*SERVICES, "kafka", "postgres", "triton", "jaeger", "prometheus", "grafana"]


@pytest.fixture(scope="module")
def text() -> str:
    return (DEPLOY / "compose.yaml").read_text()


@pytest.fixture(scope="module")
def compose(text: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded


def seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+)(s|m)", duration)
    assert match, duration
    return float(match[1]) * (60 if match[2] == "m" else 1)


def test_every_password_is_required_and_none_has_a_default(text: str) -> None:
    assert "change-me" not in text
    assert not re.search(r"PASSWORD[A-Z_]*:-", text), "a password with a silent default"
    required = set(REQUIRED.findall(text))
    assert required == {
        "LLMFLEET_POSTGRES_ADMIN_PASSWORD",
        "LLMFLEET_GRAFANA_ADMIN_PASSWORD",
        *(f"LLMFLEET_{service.upper()}_DB_PASSWORD" for service in SERVICES),
    }
    example = (DEPLOY / ".env.example").read_text()
    assert required <= set(re.findall(r"^([A-Z0-9_]+)=", example, re.MULTILINE))


def test_kafka_has_an_external_listener_advertised_to_and_published_on_the_host(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]
    env = kafka["environment"]
    listeners = dict(item.split("://") for item in env["KAFKA_LISTENERS"].split(","))
    advertised = dict(item.split("://") for item in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    assert advertised["PLAINTEXT"] == "kafka:9092"
    assert listeners["EXTERNAL"] == ":29092"
    assert advertised["EXTERNAL"] == "${LLMFLEET_KAFKA_EXTERNAL_HOST:-127.0.0.1}:${LLMFLEET_KAFKA_EXTERNAL_PORT:-29092}"
    assert "EXTERNAL:PLAINTEXT" in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"]
    [port] = kafka["ports"]
    assert port["target"] == 29092 and port["published"] == "${LLMFLEET_KAFKA_EXTERNAL_PORT:-29092}"


def test_every_published_port_binds_the_operators_address_only(compose: dict[str, Any]) -> None:
    published = {name: spec["ports"] for name, spec in compose["services"].items() if "ports" in spec}
    assert set(published) == {"kafka", "jaeger", "prometheus", "grafana"}
    for ports in published.values():
        for port in ports:
            assert isinstance(port, dict), "short syntax binds 0.0.0.0"
            assert port["host_ip"] == "${LLMFLEET_BIND_ADDRESS:-127.0.0.1}"


def test_triton_runs_by_default_and_the_gpu_profile_needs_a_gpu_model_repository(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert "profiles" not in services["triton"]
    gpu = services["triton-gpu"]
    assert gpu["profiles"] == ["gpu"]
    [volume] = gpu["volumes"]
    assert volume["source"].startswith("${LLMFLEET_TRITON_GPU_MODELS:-")
    assert volume["bind"]["create_host_path"] is False, "an unset repository must stop Compose, not mount nothing"
    assert "--model-repository=/gpu-models" in gpu["command"] and volume["target"] == "/gpu-models"
    pool = services["allocator"]["environment"]["LLMFLEET_ALLOCATOR_TRITON_POOL"]
    assert "${LLMFLEET_TRITON_HOST:-triton}:8000" in pool


def test_every_long_running_service_has_a_health_check_and_ours_ask_health_and_ready(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in LONG_RUNNING:
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no health check"
    for name in SERVICES:
        probe = " ".join(services[name]["healthcheck"]["test"])
        assert "'health'" in probe and "'ready'" in probe


def test_grace_periods_outlast_each_drain(compose: dict[str, Any]) -> None:
    services = compose["services"]
    router_drain = RouterSettings.model_fields["shutdown_timeout_s"].default
    assert seconds(services["router"]["stop_grace_period"]) > router_drain
    broker_drain = 15.0  # shared/broker.py: FastStream's graceful_timeout
    for name in SERVICES:
        assert seconds(services[name]["stop_grace_period"]) > broker_drain
    assert seconds(services["triton"]["stop_grace_period"]) > 30  # tritonserver --exit-timeout-secs
    assert seconds(services["kafka"]["stop_grace_period"]) >= 60


def test_observability_keeps_its_data_and_admits_no_anonymous_user(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["jaeger"]["image"].startswith("jaegertracing/jaeger:2.")
    observability = ("jaeger", "prometheus", "grafana")
    mounts = {name: [v.split(":")[0] for v in services[name]["volumes"]] for name in observability}
    assert mounts == {"jaeger": ["jaeger-data"], "prometheus": ["prometheus-data"], "grafana": ["grafana-data"]}
    assert {"jaeger-data", "prometheus-data", "grafana-data"} <= set(compose["volumes"])
    jaeger = yaml.safe_load((DEPLOY / "compose" / "jaeger.yaml").read_text())
    badger = jaeger["extensions"]["jaeger_storage"]["backends"]["badger_store"]["badger"]
    assert badger["directories"]["keys"].startswith("/tmp/") and badger["ephemeral"] is False
    assert services["grafana"]["environment"]["GF_AUTH_ANONYMOUS_ENABLED"] == "false"


def test_services_sample_traces_and_never_migrate_at_start(compose: dict[str, Any]) -> None:
    for name in SERVICES:
        env = compose["services"][name]["environment"]
        assert env["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio"
        assert env["OTEL_TRACES_SAMPLER_ARG"] == "${LLMFLEET_TRACE_SAMPLE_RATIO:-0.1}"
        assert env[f"LLMFLEET_{name.upper()}_MIGRATE_ON_START"] == "false"


def test_the_local_override_changes_only_image_and_build(compose: dict[str, Any]) -> None:
    override = yaml.safe_load((DEPLOY / "compose" / "local" / "compose.override.yaml").read_text())
    assert set(override) <= {"services"} | {key for key in override if key.startswith("x-")}
    for name, spec in override["services"].items():
        assert name in compose["services"], f"the override adds {name}"
        assert set(spec) == {"image", "build"}, f"{name}: the override changes {set(spec) - {'image', 'build'}}"
        assert spec["image"].endswith(":local") and (ROOT / spec["build"]["dockerfile"]).exists()
    started = {"kafka", "postgres", "triton", "jaeger", "prometheus", *SERVICES}
    jobs = {name for name, spec in compose["services"].items() if spec.get("restart") == "no"}
    assert started | jobs <= set(override["services"]), "a service make test-compose starts has no local image"


def test_the_local_kafka_image_takes_the_jars_the_local_stack_resolves() -> None:
    from deploy.local.kafka_install import KAFKA_VERSION

    dockerfile = (DEPLOY / "compose" / "local" / "kafka.Dockerfile").read_text()
    assert f"ARG KAFKA_VERSION={KAFKA_VERSION}\n" in dockerfile
    assert f"!.cache/kafka-{KAFKA_VERSION}/libs" in (ROOT / ".dockerignore").read_text().splitlines()
