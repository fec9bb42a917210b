"""Pure parts of the plumbing: dead-letter reasons, settings, ports, provisioning statements, probes."""

from __future__ import annotations

import base64
import socket
import urllib.error
import urllib.request
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from deploy.local.common import free_port, port_is_free
from deploy.local.postgres import SERVICES, provisioning_sql
from services.scaler.settings import ScalerSettings
from shared.events import DemandWindowReported
from shared.metrics import new_registry, serve_metrics
from shared.runtime import create_runtime
from shared.subscribe import dead_letter_for, reason_for


def validation_error(raw: bytes) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        DemandWindowReported.model_validate_json(raw)
    return caught.value


def test_reason_names_broken_json():
    assert reason_for(validation_error(b"{nope")).startswith("invalid JSON")


def test_reason_names_the_failing_fields():
    reason = reason_for(validation_error(b'{"source": "x", "requests": -1}'))
    assert reason.startswith("validation failed")
    assert "requests" in reason and "model_id" in reason


def test_dead_letter_keeps_the_bytes_and_where_they_came_from():
    record = SimpleNamespace(topic="fleet.demand.v1", partition=2, offset=41, value=b"\x00\xffraw")
    letter = dead_letter_for(record, "llmfleet-scaler", "invalid JSON: x", "scaler")
    assert base64.b64decode(letter.payload_b64) == b"\x00\xffraw"
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == ("fleet.demand.v1", 2, 41)


def test_service_settings_read_their_own_prefix(monkeypatch):
    monkeypatch.setenv("LLMFLEET_SCALER_KAFKA_BOOTSTRAP", "127.0.0.1:19092")
    monkeypatch.setenv("LLMFLEET_ROUTER_KAFKA_BOOTSTRAP", "127.0.0.1:29092")
    settings = ScalerSettings()
    assert settings.kafka_bootstrap == "127.0.0.1:19092"
    assert settings.group_id == "llmfleet-scaler" and settings.db_schema == "scaler"


def test_free_port_moves_past_a_taken_port():
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = held.getsockname()[1]
        assert not port_is_free(taken)
        chosen = free_port(taken)
        assert chosen != taken and port_is_free(chosen)


def test_every_service_gets_a_role_owning_its_schema():
    sql = "\n".join(provisioning_sql())
    for service in SERVICES:
        assert f"create schema if not exists {service} authorization {service}" in sql
    assert "revoke all on schema public from public" in sql


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_the_metrics_port_answers_health_ready_live_and_metrics():
    ready = {"ok": False}
    port = free_port(19400)
    served = serve_metrics(new_registry(), port, ready=lambda: (ready["ok"], "why not"), live=lambda: (True, "turns"))
    assert served is not None
    try:
        assert get(port, "/health") == (200, "up")
        assert get(port, "/ready") == (503, "why not")
        ready["ok"] = True
        assert get(port, "/ready") == (200, "why not")
        assert get(port, "/live") == (200, "turns")
        assert get(port, "/metrics")[0] == 200
    finally:
        served[0].shutdown()
        served[0].server_close()


def test_without_checks_serving_means_ready():
    port = free_port(19450)
    served = serve_metrics(new_registry(), port)
    assert served is not None
    try:
        assert get(port, "/health")[0] == get(port, "/ready")[0] == 200
        assert get(port, "/live")[0] == 200  # no /live check: the metrics answer
    finally:
        served[0].shutdown()
        served[0].server_close()


def test_a_service_is_ready_once_started_with_its_broker_connected():
    runtime = create_runtime(ScalerSettings())  # builds clients, connects nothing
    assert runtime.ready() == (False, "starting")
    runtime.started = True
    assert runtime.ready() == (False, "broker not connected")


def test_services_migrate_at_start_only_when_told(monkeypatch):
    assert ScalerSettings().migrate_on_start is False
    monkeypatch.setenv("LLMFLEET_SCALER_MIGRATE_ON_START", "true")
    assert ScalerSettings().migrate_on_start is True
