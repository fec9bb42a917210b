"""deploy/compose.secure.yaml, checked without a Docker engine: what the overlay makes of the
production file (make test-compose runs it for real): every service logs in as its own Kafka
principal over TLS and verifies PostgreSQL's certificate, the broker admits nobody else, the ACLs
are applied before any service starts, and no password has a default."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.local.postgres import SERVICES
from deploy.local.secure import BROKER_SUBJECT
from deploy.settings_table import settings_class
from shared.events.ownership import PRINCIPALS
from tests.unit.deploy.test_compose import PROCESS_WIDE, compose_errors, interpolate
from tests.unit.deploy.test_compose_hardening import REQUIRED

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"


def merge(base: Any, overlay: Any, key: str = "") -> Any:
    """Compose's merge of a later file: mappings key by key, `secrets` lists joined, anything else
    (command, entrypoint, a health check's test, a scalar) replaced."""
    if isinstance(base, dict) and isinstance(overlay, dict):
        both = {k: merge(base[k], overlay[k], k) for k in base.keys() & overlay.keys()}
        return {**base, **overlay, **both}
    if key == "secrets" and isinstance(base, list) and isinstance(overlay, list):
        return list(dict.fromkeys(base + overlay))
    return overlay


@pytest.fixture(scope="module")
def overlay_text() -> str:
    return (DEPLOY / "compose.secure.yaml").read_text()


@pytest.fixture(scope="module")
def secure(overlay_text: str) -> dict[str, Any]:
    base = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    merged: dict[str, Any] = merge(base, yaml.safe_load(overlay_text))
    return merged


def test_the_overlay_and_the_merged_file_follow_the_compose_specification(
    overlay_text: str, secure: dict[str, Any]
) -> None:
    assert compose_errors(yaml.safe_load(overlay_text)) == []
    assert compose_errors(secure) == []


def test_the_merge_replaces_commands_and_joins_secrets() -> None:  # the helper above, on a known case
    merged = merge(
        {"a": {"command": ["x"], "secrets": ["s"], "env": {"A": 1}}},
        {"a": {"command": ["y"], "secrets": ["t"], "env": {"B": 2}}},
    )
    assert merged == {"a": {"command": ["y"], "secrets": ["s", "t"], "env": {"A": 1, "B": 2}}}


def test_every_service_logs_in_as_its_own_principal_and_verifies_both_servers(secure: dict[str, Any]) -> None:
    for service in SERVICES:
        spec = secure["services"][service]
        env, prefix = spec["environment"], f"LLMFLEET_{service.upper()}_"
        assert env[prefix + "KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
        assert env[prefix + "KAFKA_SASL_USERNAME"] == service
        assert env[prefix + "KAFKA_SASL_PASSWORD"] == f"${{{prefix}KAFKA_PASSWORD:?see deploy/.env.example}}"
        assert env[prefix + "KAFKA_SSL_CAFILE"] == env["PGSSLROOTCERT"] == "/run/secrets/llmfleet-ca"
        assert "llmfleet-ca" in spec["secrets"]
        assert env[prefix + "DATABASE_URL"].endswith("@postgres:5432/llmfleet?ssl=verify-full")
        assert env[prefix + "DATABASE_URL"].startswith(f"postgresql+asyncpg://{service}:")
        # Its migration job connects the same way.
        migrate = secure["services"][f"migrate-{service}"]["environment"]
        assert migrate[prefix + "DATABASE_URL"] == env[prefix + "DATABASE_URL"]
        assert set(env) - PROCESS_WIDE - {k for k in env if k.startswith(("OTEL_", prefix))} == set()


def test_the_services_read_the_overlays_settings(secure: dict[str, Any]) -> None:
    for service in SERVICES:
        with pytest.MonkeyPatch.context() as env:
            for key, value in secure["services"][service]["environment"].items():
                env.setenv(key, interpolate(str(value)))
            build: Any = settings_class(service)  # its own subclass: the rest comes from the environment
            security = build().kafka_security
            assert security.secure and security.username == service


def test_the_broker_admits_only_sasl_ssl_logins_and_denies_what_no_acl_allows(secure: dict[str, Any]) -> None:
    kafka = secure["services"]["kafka"]
    env = kafka["environment"]
    protocols = dict(item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    listeners = dict(item.split("://") for item in env["KAFKA_LISTENERS"].split(","))
    advertised = dict(item.split("://") for item in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    assert set(listeners) == set(protocols)
    assert {protocols[name] for name in advertised} == {"SASL_SSL"}  # every listener a client is told of
    assert protocols["CONTROLLER"] == "SSL" and env["KAFKA_LISTENER_NAME_CONTROLLER_SSL_CLIENT_AUTH"] == "required"
    # The health check's PLAINTEXT listener: the container's loopback only, never advertised.
    assert protocols["HEALTH"] == "PLAINTEXT" and listeners["HEALTH"].startswith("127.0.0.1:")
    assert "127.0.0.1:" + listeners["HEALTH"].split(":")[1] in kafka["healthcheck"]["test"][1]
    assert env["KAFKA_AUTHORIZER_CLASS_NAME"] == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    assert env["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"
    assert env["KAFKA_SUPER_USERS"].split(";") == ["User:admin", f"User:{BROKER_SUBJECT}"]
    assert env["KAFKA_SASL_ENABLED_MECHANISMS"] == "SCRAM-SHA-512"
    assert kafka["command"] == ["bash", "/etc/llmfleet/kafka-scram-start.sh"]
    # Listener names must not contain "SSL://": the official image then demands JKS keystore files.
    assert "SSL://" not in env["KAFKA_ADVERTISED_LISTENERS"]


def test_the_topics_job_applies_every_principals_user_and_acls_first_as_the_admin(secure: dict[str, Any]) -> None:
    topics = secure["services"]["topics"]
    assert topics["entrypoint"][-1] == "python -m deploy.init acls && exec python -m deploy.init topics"
    env = topics["environment"]
    assert env["LLMFLEET_KAFKA_SASL_USERNAME"] == "admin" and env["LLMFLEET_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert {f"LLMFLEET_{p.upper()}_KAFKA_PASSWORD" for p in PRINCIPALS} <= set(env)
    for service in SERVICES:  # no service starts before the ACLs exist
        assert secure["services"][service]["depends_on"]["topics"]["condition"] == "service_completed_successfully"


def test_postgres_takes_tls_and_scram_only(secure: dict[str, Any]) -> None:
    postgres = secure["services"]["postgres"]
    args = postgres["command"]
    settings = dict(args[i + 1].split("=", 1) for i, arg in enumerate(args) if arg == "-c")
    assert settings["ssl"] == "on" and settings["hba_file"] == "/etc/llmfleet/pg_hba.conf"
    rules = [line.split() for line in (DEPLOY / "compose/secure/pg_hba.conf").read_text().splitlines()]
    rules = [rule for rule in rules if rule and not rule[0].startswith("#")]
    assert all(rule[-1] in ("scram-sha-256", "reject") for rule in rules)
    assert ["hostnossl", "all", "all", "all", "reject"] in rules
    assert not any(rule[0] == "host" for rule in rules)  # `host` would also match TCP without TLS


def test_every_secret_is_required_and_listed_in_the_example(overlay_text: str) -> None:
    assert not re.search(r"PASSWORD[A-Z_]*:-", overlay_text), "a password with a silent default"
    required = set(REQUIRED.findall(overlay_text))
    assert {"LLMFLEET_KAFKA_ADMIN_PASSWORD", *(f"LLMFLEET_{p.upper()}_KAFKA_PASSWORD" for p in PRINCIPALS)} <= required
    example = (DEPLOY / ".env.example").read_text()
    assert required <= set(re.findall(r"^([A-Z0-9_]+)=", example, re.MULTILINE))
