"""`llmfleet status` pointed at a platform by options, not by the local stack's state file.

The real broker and PostgreSQL are those of the test session; the CLI runs with LLMFLEET_RUN_DIR on
an empty folder, so a state file cannot be where it learns the addresses.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from typer.testing import CliRunner

from deploy.init import provision
from deploy.local import postgres
from llmfleet.cli import app
from llmfleet.status.health import HEALTHY, UNHEALTHY, UNREACHABLE
from shared.migrations import upgrade
from tests.support.databases import SERVICES_DIR, admin_url

READ = ("allocator", "scaler", "monitor", "cost")
MIGRATED = (*READ, "gateway")
ROOT = Path(__file__).resolve().parents[2]


def _template(info: dict[str, Any]) -> str:
    # The local stack's roles are <service>/<service>-local: one template names all four.
    return f"postgresql+asyncpg://{{service}}:{{service}}-local@{info['host']}:{info['port']}/{info['database']}"


@pytest.fixture
def migrated(postgres_info: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A database of this test's own with the schemas status, cost and keys read (others' rows stay out of it)."""
    fresh = f"cli_target_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(postgres_info, f"create database {fresh}"))
    try:
        info = dict(postgres_info, database=fresh)
        asyncio.run(provision(admin_url(postgres_info, fresh), postgres.role_password))
        for service in MIGRATED:
            upgrade(SERVICES_DIR / service / "migrations", postgres.database_url(service, info), service)
        yield info
    finally:
        asyncio.run(_admin(postgres_info, f"drop database {fresh} with (force)"))


async def _admin(postgres_info: dict[str, Any], statement: str) -> None:
    engine = create_async_engine(admin_url(postgres_info, "postgres"), isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMFLEET_")}
    return env | {"LLMFLEET_RUN_DIR": str(tmp_path / "no-stack"), "LLMFLEET_CONFIG": str(tmp_path / "none.yaml")}


def test_status_by_options_reads_the_platform_without_the_state_file(
    kafka_bootstrap: str, migrated: dict[str, Any], tmp_path: Path
) -> None:
    command = [sys.executable, "-m", "llmfleet.cli", "--bootstrap", kafka_bootstrap]
    command += ["--database-url", _template(migrated), "status", "-o", "json"]
    done = subprocess.run(command, cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert done.returncode == HEALTHY, done.stdout[-2000:] + done.stderr[-2000:]
    body = json.loads(done.stdout)
    assert body["target"]["source"] == "--bootstrap --database-url"
    assert body["health"]["kafka"]["reachable"] and body["health"]["kafka"]["missing_topics"] == []
    assert body["platform"]["databases"] == dict.fromkeys(sorted(READ), "ok")
    # The state file's folder is empty: had the CLI looked there, it would have found no broker (exit 3).
    assert "stack" not in body


def test_status_exit_codes_on_real_endpoints(
    kafka_bootstrap: str, migrated: dict[str, Any], tmp_path: Path, monkeypatch
) -> None:
    for name, value in _env(tmp_path).items():
        if name.startswith("LLMFLEET_"):
            monkeypatch.setenv(name, value)
    database = ["--database-url", _template(migrated)]
    runner = CliRunner()
    # A router whose metrics port does not answer: the platform answers, a service is not ready.
    closed = ["--metrics", f"router=http://127.0.0.1:{_closed_port()}"]
    result = runner.invoke(app, ["--bootstrap", kafka_bootstrap, *database, *closed, "status", "-o", "json"])
    assert result.exit_code == UNHEALTHY, result.output
    assert json.loads(result.output)["health"]["reasons"][0].startswith("router: not ready")
    # A broker that does not answer: unreachable.
    result = runner.invoke(app, ["--bootstrap", f"127.0.0.1:{_closed_port()}", *database, "status", "-o", "json"])
    assert result.exit_code == UNREACHABLE, result.output
    # A database server that does not answer (the broker does): unreachable too.
    nowhere = f"postgresql+asyncpg://{{service}}:x@127.0.0.1:{_closed_port()}/llmfleet"
    result = runner.invoke(app, ["--bootstrap", kafka_bootstrap, "--database-url", nowhere, "status", "-o", "json"])
    assert result.exit_code == UNREACHABLE, result.output
    assert "no service's database answers" in json.loads(result.output)["health"]["reasons"]


def test_cost_keys_and_replay_follow_the_global_options(migrated: dict[str, Any], tmp_path: Path, monkeypatch) -> None:
    for name, value in _env(tmp_path).items():
        if name.startswith("LLMFLEET_"):
            monkeypatch.setenv(name, value)
    runner = CliRunner()
    database = ["--database-url", _template(migrated)]
    tenant = f"t{uuid.uuid4().hex[:6]}"  # short: the table does not wrap it
    created = runner.invoke(app, [*database, "tenants", "create", tenant, "--rpm", "60"])
    assert created.exit_code == 0, created.output
    listed = runner.invoke(app, [*database, "tenants", "list"])
    assert listed.exit_code == 0 and tenant in listed.output
    recommendations = runner.invoke(app, [*database, "cost", "recommendations", "-o", "json"])
    assert recommendations.exit_code == 0, recommendations.output
    assert json.loads(recommendations.output) == []  # this test's own database: none yet
    # No option and no local stack (its run folder is empty): told how to give one, a usage error.
    alone = runner.invoke(app, ["tenants", "list"])
    assert alone.exit_code == 2 and "--database-url" in alone.output
    # Nothing answers: exit code 3, one line, no traceback.
    nowhere = f"postgresql+asyncpg://{{service}}:x@127.0.0.1:{_closed_port()}/llmfleet"
    down = runner.invoke(app, ["--database-url", nowhere, "cost", "recommendations"])
    assert down.exit_code == UNREACHABLE and "database does not answer" in down.output
    down = runner.invoke(app, ["--database-url", nowhere, "keys", "list"])
    assert down.exit_code == UNREACHABLE and "database does not answer" in down.output
    replay = runner.invoke(app, ["--bootstrap", f"127.0.0.1:{_closed_port()}", "replay", "azure-llm-2023"])
    assert replay.exit_code == UNREACHABLE and "does not answer" in replay.output
