"""What the secure stack gives each part: the broker's settings, each service's principal, PostgreSQL's auth."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deploy.local import kafka, postgres, services
from deploy.local.secure import SecureMaterial
from llmfleet.cli import app
from services.router.settings import RouterSettings
from shared.kafka_security import KafkaProtocol, KafkaSecurity

pytestmark = pytest.mark.unit


def _secure_stack(tmp_path: Path) -> dict[str, dict[str, object]]:
    credentials = tmp_path / "credentials.json"
    credentials.write_text(json.dumps({"admin": "a", "router": "r-pw", "monitor": "m-pw"}))
    return {
        "kafka": {
            "bootstrap": "127.0.0.1:19093",
            "secure": True,
            "credentials": str(credentials),
            "ssl_cafile": str(tmp_path / "ca.pem"),
        },
        "postgres": {
            "host": "127.0.0.1",
            "port": 5432,
            "database": "llmfleet",
            "ssl": True,
            "ssl_rootcert": str(tmp_path / "ca.pem"),
        },
    }


def test_each_service_gets_its_own_principal_and_the_ca(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stack = _secure_stack(tmp_path)
    env = services.service_env("router", stack, "llmfleet", 9300, {})
    assert env["LLMFLEET_ROUTER_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert env["LLMFLEET_ROUTER_KAFKA_SASL_USERNAME"] == "router"
    assert env["LLMFLEET_ROUTER_KAFKA_SASL_PASSWORD"] == "r-pw"
    assert env["LLMFLEET_ROUTER_KAFKA_SSL_CAFILE"] == str(tmp_path / "ca.pem")
    assert env["PGSSLROOTCERT"] == str(tmp_path / "ca.pem")
    assert env["LLMFLEET_ROUTER_DATABASE_URL"].endswith("?ssl=verify-full")
    assert env["LLMFLEET_ROUTER_CONSUMER_GROUP"].startswith("llmfleet-router")  # inside its group ACL
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    security = RouterSettings().kafka_security
    assert security == KafkaSecurity(KafkaProtocol.SASL_SSL, "router", "r-pw", str(tmp_path / "ca.pem"))


def test_a_plaintext_stack_adds_no_security_settings() -> None:
    stack = {"kafka": {"bootstrap": "127.0.0.1:9092"}, "postgres": {"host": "h", "port": 1, "database": "d"}}
    env = services.service_env("monitor", stack, "llmfleet", 9300, {})
    assert not [key for key in env if "SASL" in key or "SECURITY" in key or key.startswith("PG")]
    assert "?" not in env["LLMFLEET_MONITOR_DATABASE_URL"]


def test_the_secure_broker_denies_by_default_and_speaks_only_sasl_ssl(tmp_path: Path) -> None:
    material = SecureMaterial(tmp_path, {"admin": "pw"})
    lines = kafka._server_properties(19093, 19094, tmp_path / "data", material).splitlines()
    config = dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))
    assert config["listeners"] == "SASL_SSL://127.0.0.1:19093,CONTROLLER://127.0.0.1:19094"
    assert config["listener.security.protocol.map"] == "CONTROLLER:SSL,SASL_SSL:SASL_SSL"
    assert config["listener.name.controller.ssl.client.auth"] == "required"
    assert config["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert config["authorizer.class.name"] == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    assert config["allow.everyone.if.no.acl.found"] == "false"
    assert config["super.users"] == "User:admin;User:CN=llmfleet-broker"
    plain = kafka._server_properties(9092, 9093, tmp_path / "data")
    assert "SASL" not in plain and "authorizer" not in plain


def test_postgres_never_trusts_and_wants_tls_when_secure() -> None:
    for secure in (False, True):
        rules = [line.split() for line in postgres.hba_conf(secure).splitlines() if not line.startswith("#")]
        assert all(rule[-1] in ("scram-sha-256", "reject") for rule in rules)
        assert any(rule[0] == "local" for rule in rules)
    secure_rules = postgres.hba_conf(True)
    assert "hostnossl all all all reject" in secure_rules and "\nhost " not in secure_rules


def test_llmfleet_up_has_a_secure_switch() -> None:
    result = CliRunner().invoke(app, ["up", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "--secure" in result.output
