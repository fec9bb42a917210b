"""`llmfleet tenants` and `llmfleet keys` against the gateway's schema: a key is shown once and works until revoked."""

from __future__ import annotations

import uuid

import openai
import pytest
from typer.testing import CliRunner

from llmfleet.cli import app
from tests.integration.gateway.conftest import Replica

pytestmark = pytest.mark.integration


def run(*args: str, database_url: str) -> str:
    wide = {"COLUMNS": "250"}  # rich cuts table cells (the tenant's name) to the terminal's width
    result = CliRunner(env=wide).invoke(app, [*args, "--database-url", database_url], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_keys_made_with_the_cli_work_until_revoked(replicas: list[Replica], gateway_database: str) -> None:
    tenant = f"cli-{uuid.uuid4().hex[:8]}"
    assert "created" in run("tenants", "create", tenant, "--rpm", "100", database_url=gateway_database)
    assert tenant in run("tenants", "list", database_url=gateway_database)
    out = run("keys", "create", tenant, "--scope", "echo", "--expires-in-days", "1", database_url=gateway_database)
    secret = out.strip().splitlines()[-1]
    assert secret.startswith("sk-llmf-")
    client = openai.OpenAI(base_url=replicas[0].base_url, api_key=secret, max_retries=0)
    assert client.completions.create(model="echo", prompt="hi", max_tokens=2).choices[0].text == "hi"
    listed = run("keys", "list", "--tenant", tenant, database_url=gateway_database)
    assert secret not in listed  # never shown again
    assert "revoked 1" in run("keys", "revoke", secret[:14], database_url=gateway_database)
    with pytest.raises(openai.AuthenticationError):
        client.completions.create(model="echo", prompt="hi", max_tokens=2)
