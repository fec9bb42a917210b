"""One-shot jobs of a deployment (Compose, Kubernetes): database roles, Kafka users and ACLs, topics, migrations.

`python -m deploy.init database` gives each service its login role and schema (admin URL from
LLMFLEET_ADMIN_DATABASE_URL, each role's password from LLMFLEET_<SERVICE>_DB_PASSWORD);
`python -m deploy.init acls` (SASL_SSL brokers only) upserts each Kafka principal's SCRAM-SHA-512
password (LLMFLEET_<PRINCIPAL>_KAFKA_PASSWORD, for every principal of shared/events/ownership.py)
and creates its ACLs (deploy/kafka_acl.py), as the broker's admin;
`python -m deploy.init topics` creates every topic with its partition count. Both Kafka jobs read
LLMFLEET_KAFKA_BOOTSTRAP and, on a secure broker, the admin's LLMFLEET_KAFKA_SECURITY_PROTOCOL,
_SASL_USERNAME, _SASL_PASSWORD, _SSL_CAFILE;
`python -m deploy.init migrate SERVICE` runs that service's Alembic migrations with the service's
own role (LLMFLEET_<SERVICE>_DATABASE_URL). All are idempotent, so a job may run again.
"""

from __future__ import annotations

import asyncio
import importlib
import os
from collections.abc import Callable
from typing import Any

import typer

from deploy import kafka_acl
from deploy.local.postgres import SERVICES, provisioning_sql
from deploy.settings_table import settings_class
from shared.broker import ensure_topics
from shared.events.ownership import PRINCIPALS
from shared.kafka_security import kafka_security_from_env

app = typer.Typer(add_completion=False, help="llmfleet deployment jobs")


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise typer.BadParameter(f"{name} is not set")
    return value


def role_password_from_env(service: str) -> str:
    """A service role's password, as the deployment sets it."""
    return _env(f"LLMFLEET_{service.upper()}_DB_PASSWORD")


async def provision(admin_url: str, password_for: Callable[[str], str]) -> None:
    """Run the role-and-schema statements as the database's admin (asyncpg URL)."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            for statement in provisioning_sql(password_for):
                await connection.execute(text(statement))
    finally:
        await engine.dispose()


@app.command()
def database() -> None:
    """Create each service's role and schema (and close `public`)."""
    asyncio.run(provision(_env("LLMFLEET_ADMIN_DATABASE_URL"), role_password_from_env))
    typer.echo(f"roles and schemas ready: {', '.join(SERVICES)}")


def kafka_password_from_env(principal: str) -> str:
    """A Kafka principal's SCRAM password, as the deployment sets it."""
    return _env(f"LLMFLEET_{principal.upper()}_KAFKA_PASSWORD")


@app.command()
def acls() -> None:
    """Upsert every principal's SCRAM-SHA-512 password and create the ACLs (SASL_SSL brokers, as the admin)."""
    try:
        admin = kafka_security_from_env()
    except ValueError as error:  # an unknown protocol, or SASL_SSL without a username or password
        raise typer.BadParameter(str(error)) from error
    if not admin.secure:
        raise typer.BadParameter(
            "SCRAM users and ACLs need a SASL_SSL broker and its admin: set LLMFLEET_KAFKA_SECURITY_PROTOCOL=SASL_SSL"
            " and LLMFLEET_KAFKA_SASL_USERNAME, _SASL_PASSWORD, _SSL_CAFILE"
        )
    bootstrap = _env("LLMFLEET_KAFKA_BOOTSTRAP")
    passwords = {principal: kafka_password_from_env(principal) for principal in PRINCIPALS}
    users, bindings = kafka_acl.apply(bootstrap, admin, passwords, kafka_acl.acl_bindings())
    typer.echo(f"kafka users and ACLs applied: {users} users, {bindings} ACLs")


@app.command()
def topics() -> None:
    """Create every platform topic with its partition count."""
    created = asyncio.run(ensure_topics(_env("LLMFLEET_KAFKA_BOOTSTRAP"), security=kafka_security_from_env()))
    typer.echo(f"topics created: {', '.join(created) or 'none (all existed)'}")


@app.command()
def migrate(service: str) -> None:
    """Bring one service's schema to the latest revision, as that service's role."""
    if service not in SERVICES:
        raise typer.BadParameter(f"unknown service {service!r}; one of {', '.join(SERVICES)}")
    _env(f"LLMFLEET_{service.upper()}_DATABASE_URL")  # say which variable is missing, before anything runs
    # The service's own migrate: its schema, and what it seeds (the allocator's GPU inventory).
    build: Any = settings_class(service)  # its own subclass: every field has a default or comes from the environment
    settings = build()
    importlib.import_module(f"services.{service}.app").migrate(settings)
    typer.echo(f"{service}: migrated")


if __name__ == "__main__":
    app()
