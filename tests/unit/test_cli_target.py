"""The CLI's global options: where the platform is (options, contexts file, local stack), -o, exit codes.

`llmfleet status` runs here on fake probes (the `Probes` protocol's other implementation), so the
exit codes are checked for every verdict without a broker or a database.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from llmfleet import status as reading
from llmfleet import target
from llmfleet.cli import app
from llmfleet.status.health import (
    DB_NOT_GIVEN,
    DB_NOT_MIGRATED,
    DB_OK,
    DB_UNREACHABLE,
    HEALTHY,
    UNHEALTHY,
    UNREACHABLE,
    is_unreachable,
    verdict,
)

URL = "postgresql+asyncpg://{service}:pw-{service}@db.example:5432/llmfleet"
EMPTY_PLATFORM: dict[str, Any] = {
    "servers": [],
    "models": [],
    "queues": [],
    "alerts": [],
    "cost": {
        "report_id": None,
        "created_at": None,
        "total_per_hour": None,
        "by_region_per_hour": {},
        "by_model_per_hour": {},
        "open_recommendations": 0,
        "open_savings_per_month": 0.0,
    },
    "notes": [],
}


class FakeProbes:
    """Answers as configured, and records what it was asked (which URL each service's role got)."""

    def __init__(
        self, kafka_up: bool = True, database: str = DB_OK, ready: bool = True, missing: Iterable[str] = ()
    ) -> None:
        self.kafka_up, self.database, self.ready, self.missing = kafka_up, database, ready, list(missing)
        self.asked: dict[str, Any] = {"endpoints": []}

    async def kafka(self, bootstrap: str, topics: Iterable[str]) -> dict[str, Any]:
        self.asked["bootstrap"] = bootstrap
        if not self.kafka_up:
            return {"bootstrap": bootstrap, "reachable": False, "error": "KafkaConnectionError: refused"}
        return {"bootstrap": bootstrap, "reachable": True, "brokers": 1, "missing_topics": self.missing}

    async def endpoints(self, base_url: str) -> dict[str, Any]:
        self.asked["endpoints"].append(base_url)
        return {"url": base_url, "health": True, "ready": self.ready} | ({} if self.ready else {"detail": "503"})

    async def platform(self, database_url: Callable[[str], str | None], router_metrics: str | None) -> dict[str, Any]:
        urls = {s: database_url(s) for s in ("allocator", "scaler", "monitor", "cost")}
        self.asked["databases"], self.asked["router_metrics"] = urls, router_metrics
        states = {s: (self.database if u else DB_NOT_GIVEN) for s, u in urls.items()}
        return EMPTY_PLATFORM | {"databases": states}


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[CliRunner]:
    """A runner whose environment names no target and no contexts file (the developer's own stays out)."""
    for name in ("LLMFLEET_BOOTSTRAP", "LLMFLEET_DATABASE_URL", "LLMFLEET_METRICS", "LLMFLEET_CONTEXT"):
        monkeypatch.delenv(name, raising=False)
    for service in target.SERVICES:
        monkeypatch.delenv(f"LLMFLEET_{service.upper()}_DATABASE_URL", raising=False)
    monkeypatch.setenv(target.CONFIG_ENV, str(tmp_path / "absent.yaml"))
    yield CliRunner()


def _status(runner: CliRunner, probes: FakeProbes, *args: str) -> Any:
    import unittest.mock

    with unittest.mock.patch.object(reading, "PROBES", probes):
        return runner.invoke(app, [*args, "status", "-o", "json"])


def _remote(*extra: str) -> list[str]:
    return ["--bootstrap", "kafka.example:9092", "--database-url", URL, "--metrics", "http://{service}:9100", *extra]


# ------------------------------------------------------------------------------------ -o as a choice


@pytest.mark.parametrize("command", [["status"], ["cost", "recommendations"], ["cost", "tenants"]])
def test_an_unknown_output_format_is_a_usage_error(runner: CliRunner, command: list[str]) -> None:
    result = runner.invoke(app, [*command, "-o", "yaml"])
    assert result.exit_code == 2
    assert "'yaml' is not one of" in result.output and "table" in result.output and "json" in result.output


# ------------------------------------------------------------------------------------ exit codes


def test_status_is_0_when_everything_answers_and_is_ready(runner: CliRunner) -> None:
    probes = FakeProbes()
    result = _status(runner, probes, *_remote())
    assert result.exit_code == HEALTHY, result.output
    body = json.loads(result.output)
    assert body["health"]["exit_code"] == 0 and body["health"]["reasons"] == []
    # The template gave each role its own URL; the metrics template each service its endpoint.
    assert probes.asked["databases"]["cost"] == "postgresql+asyncpg://cost:pw-cost@db.example:5432/llmfleet"
    assert probes.asked["router_metrics"] == "http://router:9100/metrics"
    assert sorted(probes.asked["endpoints"]) == sorted(f"http://{s}:9100" for s in target.SERVICES)
    assert probes.asked["bootstrap"] == "kafka.example:9092"
    assert "pw-cost" not in result.output  # the target is described without its passwords


def test_status_is_1_when_a_service_is_not_ready(runner: CliRunner) -> None:
    result = _status(runner, FakeProbes(ready=False), *_remote())
    assert result.exit_code == UNHEALTHY
    assert "router: not ready (503)" in json.loads(result.output)["health"]["reasons"]


def test_status_is_1_when_a_schema_is_not_migrated(runner: CliRunner) -> None:
    result = _status(runner, FakeProbes(database=DB_NOT_MIGRATED), *_remote())
    assert result.exit_code == UNHEALTHY
    assert "cost: database not migrated" in json.loads(result.output)["health"]["reasons"]


def test_status_is_3_when_the_broker_does_not_answer(runner: CliRunner) -> None:
    result = _status(runner, FakeProbes(kafka_up=False), *_remote())
    assert result.exit_code == UNREACHABLE
    assert json.loads(result.output)["health"]["reasons"][0].startswith("kafka at kafka.example:9092 does not answer")


def test_status_is_3_when_no_database_answers(runner: CliRunner) -> None:
    result = _status(runner, FakeProbes(database=DB_UNREACHABLE), *_remote())
    assert result.exit_code == UNREACHABLE


def test_the_table_says_the_verdict_and_why(runner: CliRunner) -> None:
    import unittest.mock

    with unittest.mock.patch.object(reading, "PROBES", FakeProbes(missing=["fleet.alerts.v1"])):
        result = runner.invoke(app, [*_remote(), "status"])
    assert result.exit_code == UNHEALTHY
    assert "unhealthy (exit code 1)" in result.output and "topics missing: fleet.alerts.v1" in result.output


def test_verdict_rules() -> None:
    up = {"bootstrap": "k:9092", "reachable": True, "missing_topics": []}
    assert verdict(up, {"cost": DB_OK}, {"router": {"ready": True}}) == (HEALTHY, [])
    assert verdict(None, {}, {})[0] == UNREACHABLE  # nothing named: nothing to call healthy
    # One database down among several that answer is unhealthy, not unreachable.
    assert verdict(up, {"cost": DB_UNREACHABLE, "scaler": DB_OK}, {})[0] == UNHEALTHY
    # A local service recorded but not running.
    assert verdict(up, {}, {"gateway": {"running": False}}) == (UNHEALTHY, ["gateway: not running"])
    # Databases not given do not count as down.
    assert verdict(up, {"cost": DB_NOT_GIVEN}, {}) == (HEALTHY, [])


def test_only_failures_to_answer_count_as_unreachable() -> None:
    wrapped = RuntimeError("engine failed")
    wrapped.__cause__ = ConnectionRefusedError(111, "refused")
    assert is_unreachable(wrapped) and is_unreachable(TimeoutError())
    assert not is_unreachable(ValueError("password authentication failed"))


# ------------------------------------------------------------------------------------ where the platform is


def test_no_options_and_no_contexts_file_is_the_local_stack(runner: CliRunner, tmp_path: Path) -> None:
    assert target.resolve(config=str(tmp_path / "none.yaml")) is target.LOCAL


def _contexts(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "contexts.yaml"
    path.write_text(body)
    return path


COMPOSE = """
current-context: compose
contexts:
  compose:
    bootstrap: localhost:19092
    database-url: postgresql+asyncpg://{service}:change-me-{service}@localhost:5432/llmfleet
    database-urls:
      cost: postgresql+asyncpg://cost:special@cost-db:5432/llmfleet
    metrics:
      - router=http://localhost:9101/metrics
      - cost=http://localhost:9104
  dev:
    local: true
"""


def test_the_current_context_is_used_when_nothing_else_is_given(tmp_path: Path) -> None:
    where = target.resolve(config=str(_contexts(tmp_path, COMPOSE)))
    assert not where.local and where.source == "context compose"
    assert where.kafka_bootstrap() == "localhost:19092"
    assert where.database_url("scaler") == "postgresql+asyncpg://scaler:change-me-scaler@localhost:5432/llmfleet"
    assert where.database_url("cost") == "postgresql+asyncpg://cost:special@cost-db:5432/llmfleet"
    assert where.metrics_base("router") == "http://localhost:9101"  # a /metrics path is trimmed to the base
    assert where.metrics_base("cost") == "http://localhost:9104" and where.metrics_base("scaler") is None


def test_options_win_over_the_context(tmp_path: Path) -> None:
    path = _contexts(tmp_path, COMPOSE)
    where = target.resolve(bootstrap="other:9092", database_url=URL, context="compose", config=str(path))
    assert where.kafka_bootstrap() == "other:9092"
    assert where.database_url("cost") == "postgresql+asyncpg://cost:pw-cost@db.example:5432/llmfleet"
    assert where.metrics_base("router") == "http://localhost:9101"  # not given as an option: the context's


def test_a_context_can_name_the_local_stack(tmp_path: Path) -> None:
    where = target.resolve(context="dev", config=str(_contexts(tmp_path, COMPOSE)))
    assert where.local and "dev" in where.source


def test_the_contexts_file_comes_from_llmfleet_config(runner: CliRunner, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv(target.CONFIG_ENV, str(_contexts(tmp_path, COMPOSE)))
    probes = FakeProbes()
    result = _status(runner, probes)  # no option at all: the file's current context
    assert result.exit_code == HEALTHY, result.output
    assert probes.asked["bootstrap"] == "localhost:19092"
    assert json.loads(result.output)["target"]["source"] == "context compose"
    assert sorted(probes.asked["endpoints"]) == ["http://localhost:9101", "http://localhost:9104"]


def test_environment_variables_stand_for_the_options(runner: CliRunner, monkeypatch) -> None:
    monkeypatch.setenv("LLMFLEET_BOOTSTRAP", "env-kafka:9092")
    monkeypatch.setenv("LLMFLEET_DATABASE_URL", URL)
    monkeypatch.setenv("LLMFLEET_COST_DATABASE_URL", "postgresql+asyncpg://cost:own@elsewhere:5432/llmfleet")
    probes = FakeProbes()
    result = _status(runner, probes)
    assert result.exit_code == HEALTHY, result.output
    assert probes.asked["bootstrap"] == "env-kafka:9092"
    assert probes.asked["databases"]["cost"] == "postgresql+asyncpg://cost:own@elsewhere:5432/llmfleet"
    assert probes.asked["databases"]["scaler"].startswith("postgresql+asyncpg://scaler:pw-scaler@")
    assert probes.asked["endpoints"] == [] and probes.asked["router_metrics"] is None  # no metrics named


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--context", "nope"], "no context 'nope'"),
        (["--metrics", "router:9100"], "give service=http://host:port"),
        (["--metrics", "nosuch=http://x:1"], "give service=http://host:port"),
    ],
)
def test_a_bad_target_is_a_usage_error(runner: CliRunner, tmp_path: Path, args: list[str], complaint: str) -> None:
    result = runner.invoke(app, ["--config", str(_contexts(tmp_path, COMPOSE)), *args, "status"])
    assert result.exit_code == 2
    assert complaint in " ".join(result.output.split())


@pytest.mark.parametrize(
    "body",
    ["contexts: [a, b]\n", "contexts:\n  x:\n    bootstrap: a\n    typo: b\n", "contexts: {x: {}}\n: : :\n"],
)
def test_a_malformed_contexts_file_is_refused(tmp_path: Path, body: str) -> None:
    with pytest.raises(target.TargetError):
        target.resolve(context="x", config=str(_contexts(tmp_path, body)))


def test_a_named_context_without_a_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(target.TargetError, match="no contexts file"):
        target.resolve(context="compose", config=str(tmp_path / "missing.yaml"))


def test_metrics_pairs_and_templates() -> None:
    assert target.parse_metrics(["router=http://a:1/ready, cost=http://b:2"]) == {
        "router": "http://a:1",
        "cost": "http://b:2",
    }
    # A pair before a template keeps its own URL; the template fills in the rest.
    both = target.parse_metrics(["router=http://r:1", "http://{service}.ns.svc:9100"])
    assert both["router"] == "http://r:1" and both["gateway"] == "http://gateway.ns.svc:9100"
