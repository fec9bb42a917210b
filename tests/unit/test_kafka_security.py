"""Kafka client security: what each client is given, from the settings and from the environment."""

from __future__ import annotations

import ssl

import pytest

from shared.kafka_security import PLAINTEXT, KafkaProtocol, KafkaSecurity, kafka_security_from_env
from shared.settings import ServiceSettings


def test_plaintext_adds_nothing_to_a_client() -> None:
    assert PLAINTEXT.client_options() == {}
    assert PLAINTEXT.faststream() is None


def test_sasl_ssl_gives_scram_512_over_verified_tls() -> None:
    security = KafkaSecurity(KafkaProtocol.SASL_SSL, "router", "s3cret")
    options = security.client_options()
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("router", "s3cret")
    context = options["ssl_context"]
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
    assert "s3cret" not in repr(security)
    broker_security = security.faststream()
    assert broker_security is not None and broker_security.use_ssl


def test_sasl_ssl_without_credentials_is_refused() -> None:
    with pytest.raises(ValueError, match="username and password"):
        KafkaSecurity(KafkaProtocol.SASL_SSL, "router", "")


def test_service_settings_read_the_service_prefixed_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMFLEET_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("LLMFLEET_KAFKA_SASL_USERNAME", "monitor")
    monkeypatch.setenv("LLMFLEET_KAFKA_SASL_PASSWORD", "pw")
    monkeypatch.setenv("LLMFLEET_KAFKA_SSL_CAFILE", "/tmp/ca.pem")
    security = ServiceSettings(service_name="monitor").kafka_security
    assert security == KafkaSecurity(KafkaProtocol.SASL_SSL, "monitor", "pw", "/tmp/ca.pem")
    assert "pw" not in repr(ServiceSettings(service_name="monitor"))
    assert kafka_security_from_env() == security


def test_the_default_stays_plaintext(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SECURITY_PROTOCOL", "SASL_USERNAME", "SASL_PASSWORD", "SSL_CAFILE"):
        monkeypatch.delenv(f"LLMFLEET_KAFKA_{name}", raising=False)
    assert ServiceSettings(service_name="router").kafka_security == PLAINTEXT
    assert kafka_security_from_env() == PLAINTEXT
