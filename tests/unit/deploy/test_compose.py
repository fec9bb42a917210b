"""The Compose deployment, checked without a Docker engine: spec schema, settings, init jobs, dashboard."""

from __future__ import annotations

import copy
import importlib
import inspect
import json
import re
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from deploy.local.postgres import SERVICES
from deploy.settings_table import settings_class
from shared import events
from shared.metrics import new_registry

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
# Read by the process, not by a service's settings: the log format (shared/logs.py) and libpq's
# and asyncpg's CA file for `ssl=verify-full` database URLs.
PROCESS_WIDE = {"LLMFLEET_LOG_FORMAT", "PGSSLROOTCERT"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return loaded


def compose_errors(document: dict[str, Any]) -> list[str]:
    schema = json.loads(files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json").read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]


def test_the_compose_file_follows_the_compose_specification(compose: dict[str, Any]) -> None:
    assert compose_errors(compose) == []


def test_the_schema_check_catches_a_broken_file(compose: dict[str, Any]) -> None:
    broken = copy.deepcopy(compose)
    broken["services"]["router"]["restart_policy"] = "always"  # not a Compose key
    broken["services"]["kafka"]["depends_on"] = {"postgres": {"condition": "eventually"}}
    assert len(compose_errors(broken)) >= 2


def test_every_service_runs_its_own_module_with_settings_the_code_reads(compose: dict[str, Any]) -> None:
    for service in SERVICES:
        spec = compose["services"][service]
        assert spec["command"] == ["python", "-m", f"services.{service}"]
        assert (ROOT / "services" / service / "__main__.py").exists()
        cls = settings_class(service)
        prefix = str(cls.model_config.get("env_prefix", "")).upper()
        assert prefix == f"LLMFLEET_{service.upper()}_"
        fields = {name.upper() for name in cls.model_fields}
        for key in spec["environment"]:
            if key.startswith("OTEL_") or key in PROCESS_WIDE:
                continue
            assert key.startswith(prefix), f"{service}: {key} is not one of its settings"
            assert key.removeprefix(prefix) in fields, f"{service}: {key} is read by no setting"
        required = {name.upper() for name, field in cls.model_fields.items() if field.is_required()}
        assert required <= {key.removeprefix(prefix) for key in spec["environment"]}
        with pytest.MonkeyPatch.context() as env:  # the values parse as the service would read them
            for key, value in spec["environment"].items():
                env.setenv(key, interpolate(str(value)))
            cls()


def interpolate(value: str) -> str:
    """Compose's `${NAME:-default}` with nothing set: the default; a required `${NAME:?why}`: a password."""
    value = re.sub(r"\$\{[A-Z0-9_]+:\?[^}]*\}", "s3cret", value)
    return re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", value)


def test_services_scale_and_wait_for_their_jobs(compose: dict[str, Any]) -> None:
    for service in SERVICES:
        spec = compose["services"][service]
        assert "container_name" not in spec and "ports" not in spec, "a fixed name or host port blocks --scale"
        needs = spec["depends_on"]
        assert needs["kafka"]["condition"] == "service_healthy"
        assert needs["topics"]["condition"] == "service_completed_successfully"
        assert needs[f"migrate-{service}"]["condition"] == "service_completed_successfully"
        assert "healthcheck" in spec
        migrate = compose["services"][f"migrate-{service}"]
        assert migrate["command"] == ["python", "-m", "deploy.init", "migrate", service]
        assert (
            migrate["environment"][f"LLMFLEET_{service.upper()}_DATABASE_URL"]
            == spec["environment"][f"LLMFLEET_{service.upper()}_DATABASE_URL"]
        )
        assert (ROOT / "services" / service / "migrations" / "env.py").exists()


def test_the_database_job_creates_a_role_and_schema_for_every_service(compose: dict[str, Any]) -> None:
    from deploy.local.postgres import provisioning_sql

    job = compose["services"]["database"]
    assert job["command"] == ["python", "-m", "deploy.init", "database"]
    for service in SERVICES:
        assert f"LLMFLEET_{service.upper()}_DB_PASSWORD" in job["environment"]
    sql = " ".join(provisioning_sql(lambda s: "pw"))
    for service in SERVICES:
        assert f"create role {service} login" in sql
        assert f"create schema if not exists {service} authorization {service}" in sql
    assert set(SERVICES) == {p.name for p in (ROOT / "services").iterdir() if (p / "migrations").is_dir()}


def test_the_topics_job_creates_every_topic_the_code_uses(compose: dict[str, Any]) -> None:
    assert compose["services"]["topics"]["command"] == ["python", "-m", "deploy.init", "topics"]
    declared = {value.name for value in vars(events).values() if isinstance(value, events.Topic)}
    assert declared == {topic.name for topic in events.ALL_TOPICS}
    literal = re.compile(r"""["']((?:fleet|inference)\.[a-z-]+\.v\d+)["']""")
    used = {m for path in (ROOT / "services").rglob("*.py") for m in literal.findall(path.read_text())}
    assert used <= declared, f"topic names in services/ that no init job creates: {used - declared}"


def exported_metric_names() -> set[str]:
    """Every series name the services' Prometheus registries expose, from the real metric objects.

    Each service builds its metrics from one registry (a class or factory taking `registry`, in
    `adapters/metrics.py` or `metrics.py`); build them all on a fresh registry and list the series.
    """
    suffixes = {
        "counter": ("_total",),
        "gauge": ("",),
        "histogram": ("_bucket", "_sum", "_count"),
        "summary": ("_sum", "_count", ""),
    }
    registry = new_registry()
    for service in SERVICES:
        for module_name in (f"services.{service}.adapters.metrics", f"services.{service}.metrics"):
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError:
                continue
            for value in vars(module).values():
                if callable(value) and getattr(value, "__module__", "") == module_name:
                    parameters = list(inspect.signature(value).parameters)
                    if parameters == ["registry"]:
                        value(registry)
    return {family.name + suffix for family in registry.collect() for suffix in suffixes.get(family.type, ("",))}


def dashboard_queries() -> list[str]:
    dashboard = json.loads((DEPLOY / "compose" / "grafana" / "llmfleet-platform.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def test_the_dashboard_covers_the_platform_and_queries_only_exported_metrics() -> None:
    queries = dashboard_queries()
    assert len(queries) >= 8
    exported = exported_metric_names()
    named = {m for q in queries for m in re.findall(r"\bllmfleet_[a-z0-9_]+", q)}
    assert named, "the dashboard queries no llmfleet metric"
    assert named <= exported, f"dashboard metrics no service exports: {sorted(named - exported)}"
    triton = {m for q in queries for m in re.findall(r"\bnv_[a-z0-9_]+", q)}
    captured = (ROOT / "tests" / "unit" / "monitor" / "data" / "triton_use1_a100_metrics.txt").read_text()
    assert all(re.search(rf"^{name}[{{ ]", captured, re.MULTILINE) for name in triton), "Triton does not export it"
    for service in ("router", "scaler", "monitor", "cost"):
        assert any(f"llmfleet_{service}_" in q for q in queries), f"no panel for the {service}"


def test_prometheus_scrapes_every_service_on_its_metrics_port(compose: dict[str, Any]) -> None:
    config = yaml.safe_load((DEPLOY / "compose" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    discovery = jobs["llmfleet"]["dns_sd_configs"][0]
    assert set(discovery["names"]) == set(SERVICES)
    for service in SERVICES:
        assert str(compose["services"][service]["environment"][f"LLMFLEET_{service.upper()}_METRICS_PORT"]) == str(
            discovery["port"]
        )
    assert jobs["triton"]["dns_sd_configs"][0]["names"] == ["triton", "triton-gpu"]
    assert {"triton", "triton-gpu"} <= set(compose["services"])


def test_the_images_copy_what_exists() -> None:
    for dockerfile in (DEPLOY / "docker").glob("*Dockerfile"):
        for line in dockerfile.read_text().splitlines():
            if line.startswith("COPY") and "--from" not in line:
                for source in line.split()[1:-1]:
                    assert (ROOT / source).exists(), f"{dockerfile.name}: {source} does not exist"


def test_the_readme_documents_every_setting() -> None:
    from deploy.settings_table import with_table

    readme = (ROOT / "README.md").read_text()
    assert with_table(readme) == readme, "run `python -m deploy.settings_table --write`"
