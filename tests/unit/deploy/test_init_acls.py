"""`python -m deploy.init acls`: what it reads from the environment, and what it refuses (no broker)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from typer.testing import CliRunner

from deploy import init, kafka_acl
from shared.events.ownership import PRINCIPALS
from shared.kafka_security import KafkaProtocol, KafkaSecurity

ADMIN_ENV = {
    "LLMFLEET_KAFKA_BOOTSTRAP": "kafka-0:9093",
    "LLMFLEET_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    "LLMFLEET_KAFKA_SASL_USERNAME": "llmfleet-admin",
    "LLMFLEET_KAFKA_SASL_PASSWORD": "admin-secret",
    "LLMFLEET_KAFKA_SSL_CAFILE": "/etc/llmfleet/kafka-ca/ca.crt",
}
PASSWORDS_ENV = {f"LLMFLEET_{principal.upper()}_KAFKA_PASSWORD": f"{principal}-secret" for principal in PRINCIPALS}


@pytest.fixture
def applied(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Calls to kafka_acl.apply, recorded instead of reaching a broker; no ambient Kafka variables."""
    for name in [*ADMIN_ENV, *PASSWORDS_ENV]:
        monkeypatch.delenv(name, raising=False)
    calls: list[dict[str, Any]] = []

    def fake_apply(
        bootstrap: str, admin: KafkaSecurity, passwords: Mapping[str, str], bindings: list[kafka_acl.AclBinding]
    ) -> tuple[int, int]:
        calls.append({"bootstrap": bootstrap, "admin": admin, "passwords": dict(passwords), "bindings": bindings})
        return len(passwords), len(bindings)

    monkeypatch.setattr(kafka_acl, "apply", fake_apply)
    return calls


def _acls(env: dict[str, str]) -> Any:
    return CliRunner().invoke(init.app, ["acls"], env={"COLUMNS": "250", **env})


def test_it_applies_every_principal_as_the_admin(applied: list[dict[str, Any]]) -> None:
    result = _acls(ADMIN_ENV | PASSWORDS_ENV)
    assert result.exit_code == 0, result.output
    (call,) = applied
    assert call["bootstrap"] == "kafka-0:9093"
    assert call["admin"] == KafkaSecurity(
        KafkaProtocol.SASL_SSL, "llmfleet-admin", "admin-secret", "/etc/llmfleet/kafka-ca/ca.crt"
    )
    assert call["passwords"] == {principal: f"{principal}-secret" for principal in PRINCIPALS}
    assert call["bindings"] == kafka_acl.acl_bindings()
    expected = f"kafka users and ACLs applied: {len(PRINCIPALS)} users, {len(kafka_acl.acl_bindings())} ACLs"
    assert expected in result.output


def test_a_missing_password_is_named_before_anything_is_applied(applied: list[dict[str, Any]]) -> None:
    env = ADMIN_ENV | PASSWORDS_ENV
    del env["LLMFLEET_CLIENT_KAFKA_PASSWORD"]
    result = _acls(env)
    assert result.exit_code != 0
    assert "LLMFLEET_CLIENT_KAFKA_PASSWORD is not set" in result.output
    assert applied == []


@pytest.mark.parametrize("protocol", [None, "PLAINTEXT"])
def test_it_refuses_a_broker_without_sasl_ssl(applied: list[dict[str, Any]], protocol: str | None) -> None:
    env = {k: v for k, v in (ADMIN_ENV | PASSWORDS_ENV).items() if k != "LLMFLEET_KAFKA_SECURITY_PROTOCOL"}
    if protocol:
        env["LLMFLEET_KAFKA_SECURITY_PROTOCOL"] = protocol
    result = _acls(env)
    assert result.exit_code != 0
    assert "need a SASL_SSL broker" in result.output
    assert applied == []


def test_sasl_ssl_without_the_admins_password_is_refused(applied: list[dict[str, Any]]) -> None:
    env = {k: v for k, v in (ADMIN_ENV | PASSWORDS_ENV).items() if k != "LLMFLEET_KAFKA_SASL_PASSWORD"}
    result = _acls(env)
    assert result.exit_code != 0
    assert "SASL_SSL needs a SASL username and password" in result.output
    assert applied == []
