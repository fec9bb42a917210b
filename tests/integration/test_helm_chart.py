"""The Helm chart (deploy/helm/llmfleet): `helm lint`, and `helm template` validated by kubeconform.

Each values variant (the chart's values.yaml and ci/*-values.yaml: SASL_SSL + Postgres TLS + KEDA,
SASL_SSL with the ACLs job, KEDA alone, ServiceMonitor + two Triton pools) must lint clean and
render manifests that every object's strict schema accepts; the rendered objects are then read
for what the platform needs (env names that are real settings, secrets only by reference, probes,
hooks, the Triton pool).
The tools are built once into .cache/bin (`make helm-lint`, `.ci/run`); without Go they cannot be.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.helm import tools
from deploy.settings_table import settings_class
from shared.events.ownership import PRINCIPALS

SERVICES = ("router", "allocator", "scaler", "cost", "monitor", "gateway")
VARIANTS = {(v.name if v else "values.yaml"): v for v in tools.values_variants()}


@pytest.fixture(scope="module", autouse=True)
def built() -> None:
    try:
        tools.install()
    except tools.ToolsMissing as error:
        pytest.skip(f"helm chart tools unavailable: {error}")


def _render(values: Path | None = None, *sets: str) -> list[dict[str, Any]]:
    command = [str(tools.tool("helm")), "template", "llmfleet", str(tools.CHART), "--namespace", "llmfleet"]
    command += (["-f", str(values)] if values else []) + [arg for s in sets for arg in ("--set", s)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def _by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def _container(workload: dict[str, Any]) -> dict[str, Any]:
    (container,) = workload["spec"]["template"]["spec"]["containers"]
    return container


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_lint_is_clean(variant: str) -> None:
    linted = tools.lint(VARIANTS[variant])
    assert linted.returncode == 0, linted.stdout + linted.stderr
    assert "[WARNING]" not in linted.stdout and "[ERROR]" not in linted.stdout, linted.stdout


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_rendered_manifests_pass_their_strict_schemas(variant: str) -> None:
    rendered = tools.template(VARIANTS[variant])
    assert rendered.returncode == 0, rendered.stderr
    checked = tools.validate(rendered.stdout)
    summary = json.loads(checked.stdout)["summary"]
    objects = [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]
    assert checked.returncode == 0, checked.stdout
    # Every object validated: none skipped for want of a schema, none in error.
    assert summary == {"valid": len(objects), "invalid": 0, "errors": 0, "skipped": 0}


def test_the_validator_refuses_what_kubernetes_would() -> None:
    """The pipeline is not vacuous: a misspelt field and a wrong type are caught."""
    deployment = _by_kind(_render(), "Deployment")["llmfleet-router"]
    _container(deployment)["readinesProbe"] = _container(deployment).pop("readinessProbe")  # misspelt
    deployment["spec"]["replicas"] = "two"
    checked = tools.validate(yaml.safe_dump(deployment))
    assert checked.returncode != 0
    assert json.loads(checked.stdout)["summary"]["invalid"] == 1
    assert "readinesProbe" in checked.stdout and "replicas" in checked.stdout


def test_the_values_schema_refuses_bad_values() -> None:
    bad = ("kafka.bootstrap=no-port", "postgres.tls.mode=prefer", "services.router.replicas=-1")
    command = [str(tools.tool("helm")), "lint", str(tools.CHART), *(arg for s in bad for arg in ("--set", s))]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode != 0
    for where in ("/kafka/bootstrap", "/postgres/tls/mode", "/services/router/replicas"):
        assert where in done.stdout + done.stderr


def test_six_services_with_probes_resources_and_real_settings() -> None:
    docs = _render()
    workloads = _by_kind(docs, "Deployment") | _by_kind(docs, "StatefulSet")
    assert _by_kind(docs, "StatefulSet")["llmfleet-gateway"]["spec"]["serviceName"] == "llmfleet-gateway-headless"
    for service in SERVICES:
        container = _container(workloads[f"llmfleet-{service}"])
        assert container["command"] == ["python", "-m", f"services.{service}"]
        assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "metrics"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "metrics"}
        assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
        env = _env(container)
        assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
        # Every LLMFLEET_<SERVICE>_* variable names a field of that service's settings class
        # (DB_PASSWORD only feeds the URL, as in Compose and deploy/init.py).
        fields = set(settings_class(service).model_fields)
        prefix = f"LLMFLEET_{service.upper()}_"
        named = {n.removeprefix(prefix).lower() for n in env if n.startswith(prefix)} - {"db_password"}
        assert named and named <= fields, named - fields
        assert env[f"{prefix}METRICS_HOST"]["value"] == "0.0.0.0"


def test_secrets_are_references_only() -> None:
    for variant in VARIANTS.values():
        docs = _render(variant)
        assert not _by_kind(docs, "Secret")
        for doc in docs:
            if doc["kind"] not in ("Deployment", "StatefulSet", "Job"):
                continue
            for name, entry in _env(_container(doc)).items():
                if "PASSWORD" in name or name == "LLMFLEET_ADMIN_DATABASE_URL":
                    assert "secretKeyRef" in entry.get("valueFrom", {}), (doc["metadata"]["name"], name)
                if name.endswith("_DATABASE_URL") and "value" in entry:
                    assert f"$({name.removesuffix('DATABASE_URL')}DB_PASSWORD)" in entry["value"]


def test_jobs_run_as_hooks_before_install_and_upgrade_in_order() -> None:
    jobs = _by_kind(_render(), "Job")
    expected = {"llmfleet-database", "llmfleet-topics"} | {f"llmfleet-migrate-{s}" for s in SERVICES}
    assert set(jobs) == expected
    weights = {name: int(job["metadata"]["annotations"]["helm.sh/hook-weight"]) for name, job in jobs.items()}
    assert all(job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade" for job in jobs.values())
    assert max(weights["llmfleet-database"], weights["llmfleet-topics"]) < min(
        weights[f"llmfleet-migrate-{s}"] for s in SERVICES
    )
    assert _container(jobs["llmfleet-migrate-cost"])["command"] == ["python", "-m", "deploy.init", "migrate", "cost"]
    database = _env(_container(jobs["llmfleet-database"]))
    assert {f"LLMFLEET_{s.upper()}_DB_PASSWORD" for s in SERVICES} <= set(database)


def test_the_acls_job_applies_every_principal_before_the_topics() -> None:
    """kafka.sasl.applyAcls: `deploy.init acls` as the admin, a password per principal of the ownership table."""
    jobs = _by_kind(_render(VARIANTS["acls-values.yaml"]), "Job")
    acls, topics = jobs["llmfleet-acls"], jobs["llmfleet-topics"]
    assert _container(acls)["command"] == ["python", "-m", "deploy.init", "acls"]
    weight = {name: int(job["metadata"]["annotations"]["helm.sh/hook-weight"]) for name, job in jobs.items()}
    assert weight["llmfleet-acls"] < weight["llmfleet-topics"]
    env = _env(_container(acls))
    assert env["LLMFLEET_KAFKA_SECURITY_PROTOCOL"]["value"] == "SASL_SSL"
    assert env["LLMFLEET_KAFKA_SASL_USERNAME"] == _env(_container(topics))["LLMFLEET_KAFKA_SASL_USERNAME"]
    passwords = {name: e for name, e in env.items() if name.endswith("_KAFKA_PASSWORD")}
    assert set(passwords) == {f"LLMFLEET_{p.upper()}_KAFKA_PASSWORD" for p in PRINCIPALS}
    for principal in PRINCIPALS:
        secret = passwords[f"LLMFLEET_{principal.upper()}_KAFKA_PASSWORD"]["valueFrom"]["secretKeyRef"]
        assert secret == {"name": "llmfleet-kafka", "key": f"{principal}-kafka-password"}
    assert "llmfleet-acls" not in _by_kind(_render(None, "kafka.sasl.applyAcls=true"), "Job")  # PLAINTEXT: no ACLs
    # The ACLs name the table's principals, so renamed principals would get none: refused.
    command = [str(tools.tool("helm")), "template", "llmfleet", str(tools.CHART), "--set", "kafka.sasl.applyAcls=true"]
    command += ["-f", str(VARIANTS["secure-values.yaml"])]
    refused = subprocess.run(command, capture_output=True, text=True, check=False)
    assert refused.returncode != 0 and "leave kafka.sasl.usernames empty" in refused.stderr


def test_the_allocator_pool_lists_every_triton_pod() -> None:
    docs = _render(VARIANTS["servicemonitor-values.yaml"])
    pools = {n: s for n, s in _by_kind(docs, "StatefulSet").items() if n.startswith("llmfleet-triton-")}
    expected = {
        f"{name}-{i}.{name}.llmfleet.svc:8000" for name, pool in pools.items() for i in range(pool["spec"]["replicas"])
    }
    env = _env(_container(_by_kind(docs, "Deployment")["llmfleet-allocator"]))
    listed = json.loads(env["LLMFLEET_ALLOCATOR_TRITON_POOL"]["value"])
    assert env["LLMFLEET_ALLOCATOR_PROVISIONER"]["value"] == "pool"
    assert {s["endpoint"] for s in listed} == expected and len(expected) == 3
    assert {s["gpu_type"] for s in listed} == {"h100_80gb", "a100_80gb"}
    h100, cpu = _container(pools["llmfleet-triton-h100"]), _container(pools["llmfleet-triton-cpu"])
    assert h100["resources"]["limits"]["nvidia.com/gpu"] == 2
    assert "nvidia.com/gpu" not in cpu["resources"].get("limits", {})
    assert pools["llmfleet-triton-h100"]["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "models"


def test_prometheus_by_annotations_or_service_monitor() -> None:
    annotated = _by_kind(_render(), "Deployment")["llmfleet-router"]["spec"]["template"]["metadata"]
    assert annotated["annotations"]["prometheus.io/port"] == "9100"
    docs = _render(VARIANTS["servicemonitor-values.yaml"])
    (monitor,) = _by_kind(docs, "ServiceMonitor").values()
    wanted = monitor["spec"]["selector"]["matchLabels"]
    scraped = {n for n, s in _by_kind(docs, "Service").items() if wanted.items() <= s["metadata"]["labels"].items()}
    assert scraped == {f"llmfleet-{s}" for s in SERVICES if s != "scaler"} | {
        "llmfleet-triton-h100",
        "llmfleet-triton-cpu",
    }
    assert all(
        any(p["name"] == "metrics" for p in _by_kind(docs, "Service")[name]["spec"]["ports"]) for name in scraped
    )
    router = _by_kind(docs, "Deployment")["llmfleet-router"]["spec"]["template"]["metadata"]
    assert "prometheus.io/scrape" not in router.get("annotations", {})


def test_keda_scales_the_router_on_its_own_group() -> None:
    docs = _render(VARIANTS["keda-values.yaml"])
    router = _by_kind(docs, "Deployment")["llmfleet-router"]
    assert "replicas" not in router["spec"]  # KEDA owns the count
    (scaled,) = _by_kind(docs, "ScaledObject").values()
    trigger = scaled["spec"]["triggers"][0]["metadata"]
    assert trigger["consumerGroup"] == _env(_container(router))["LLMFLEET_ROUTER_CONSUMER_GROUP"]["value"]
    assert trigger["topic"] == "inference.requests.v1"
    assert scaled["spec"]["scaleTargetRef"]["name"] == "llmfleet-router"


def test_sasl_ssl_and_postgres_tls() -> None:
    docs = _render(VARIANTS["secure-values.yaml"])
    workloads = _by_kind(docs, "Deployment") | _by_kind(docs, "StatefulSet")
    for service in SERVICES:
        container = _container(workloads[f"llmfleet-{service}"])
        env = _env(container)
        prefix = f"LLMFLEET_{service.upper()}_"
        assert env[f"{prefix}KAFKA_SECURITY_PROTOCOL"]["value"] == "SASL_SSL"
        secret = env[f"{prefix}KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]
        assert secret == {"name": "fleet-kafka-passwords", "key": f"{service}-kafka-password"}
        assert env[f"{prefix}DATABASE_URL"]["value"].endswith("@db.example.internal:5432/llmfleet?ssl=verify-full")
        mounted = {m["mountPath"] for m in container["volumeMounts"]}
        assert Path(env[f"{prefix}KAFKA_SSL_CAFILE"]["value"]).parent.as_posix() in mounted
        assert Path(env["PGSSLROOTCERT"]["value"]).parent.as_posix() in mounted
    assert _env(_container(workloads["llmfleet-router"]))["LLMFLEET_ROUTER_KAFKA_SASL_USERNAME"]["value"] == (
        "fleet-router"
    )
    topics = _env(_container(_by_kind(docs, "Job")["llmfleet-topics"]))
    assert topics["LLMFLEET_KAFKA_SECURITY_PROTOCOL"]["value"] == "SASL_SSL"  # the jobs' admin principal
    (auth,) = _by_kind(docs, "TriggerAuthentication").values()
    (scaled,) = _by_kind(docs, "ScaledObject").values()
    assert scaled["spec"]["triggers"][0]["authenticationRef"]["name"] == auth["metadata"]["name"]
    assert scaled["spec"]["triggers"][0]["metadata"]["sasl"] == "scram_sha512"
