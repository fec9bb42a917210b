"""`llmfleet tenants ...` and `llmfleet keys ...`: the gateway's tenants and API keys, kept in its schema.

A key is shown once, when it is created; the gateway stores only its SHA-256.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from llmfleet import target
from llmfleet.status.health import UNREACHABLE, is_unreachable
from services.gateway.adapters.repository import GatewayRepository, gateway_store
from services.gateway.domain.budgets import nanos_to_usd, shown_usd, usd_to_nanos
from services.gateway.domain.limits import Limits
from services.gateway.use_cases import keys as admin
from shared.db import create_engine, session_factory
from shared.unit_of_work import UnitOfWork

T = TypeVar("T")
keys_app = typer.Typer(no_args_is_help=True, help="API keys of the OpenAI-compatible gateway (hashed; shown once).")
tenants_app = typer.Typer(no_args_is_help=True, help="Tenants of the gateway, with their limits.")
console = Console()

DatabaseUrl = Annotated[str | None, typer.Option(help="the gateway role's URL; default: the local stack's")]
Rpm = Annotated[int | None, typer.Option(min=1, help="requests per minute")]
Tpm = Annotated[int | None, typer.Option(min=1, help="tokens per minute (prompt + completion)")]
Concurrency = Annotated[int | None, typer.Option(min=1, help="requests in flight")]
Budget = Annotated[
    float | None,
    # At most the column's range (NUMERIC(18, 9): under a billion dollars).
    typer.Option(
        "--monthly-budget", min=0, max=999_999_999, help="USD per calendar month (UTC) at the gateway's price per token"
    ),
]


def register(app: typer.Typer) -> None:
    """Add `keys` and `tenants` to the main CLI."""
    app.add_typer(keys_app, name="keys")
    app.add_typer(tenants_app, name="tenants")


def _url(given: str | None) -> str:
    """This command's --database-url, LLMFLEET_GATEWAY_DATABASE_URL, the global target's, or the local stack's."""
    if given or (given := os.environ.get("LLMFLEET_GATEWAY_DATABASE_URL")):
        return given
    if url := target.current().database_url("gateway"):
        return url
    raise typer.BadParameter(
        "no database for the gateway role: `make up` for the local stack, or pass --database-url (global or here)"
    )


def _run(url: str | None, work: Callable[[UnitOfWork[GatewayRepository]], Awaitable[T]]) -> T:
    """Run one use case against the gateway's schema, then close the pool."""

    async def go() -> T:
        engine = create_engine(_url(url), "gateway", pool_size=1)
        try:
            return await work(gateway_store(session_factory(engine)))
        except admin.AdminError as error:
            raise typer.BadParameter(str(error)) from None
        except Exception as error:
            _exit_if_unreachable(error)
            raise
        finally:
            await engine.dispose()

    return asyncio.run(go())


def _exit_if_unreachable(error: Exception) -> None:
    """A database that does not answer is exit code 3 and one line, as in `llmfleet status`; not a traceback."""
    if is_unreachable(error):
        console.print(f"[red]the gateway role's database does not answer ({type(error).__name__}: {error})[/red]")
        raise typer.Exit(UNREACHABLE) from None


def _limits(limits: Limits) -> tuple[str, str, str, str]:
    budget = shown_usd(nanos_to_usd(limits.monthly_budget)) if limits.monthly_budget is not None else "-"
    counts = tuple(str(v) if v is not None else "-" for v in (limits.rpm, limits.tpm, limits.concurrency))
    return (*counts, budget)  # type: ignore[return-value]


def _nanos(usd: float | None) -> int | None:
    return usd_to_nanos(usd) if usd is not None else None


@tenants_app.command("create")
def create_tenant(
    name: str,
    rpm: Rpm = None,
    tpm: Tpm = None,
    concurrency: Concurrency = None,
    monthly_budget: Budget = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Create a tenant with its limits (over all its keys)."""
    limits = Limits(rpm, tpm, concurrency, _nanos(monthly_budget))
    tenant = _run(database_url, lambda store: admin.create_tenant(store, name, limits))
    console.print(f"tenant [bold]{tenant.name}[/bold] ({tenant.tenant_id}) created")


@tenants_app.command("update")
def update_tenant(
    name: str,
    rpm: Rpm = None,
    tpm: Tpm = None,
    concurrency: Concurrency = None,
    monthly_budget: Budget = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Change a tenant's limits; the ones not given stay as they are."""
    given = {"rpm": rpm, "tpm": tpm, "concurrency": concurrency, "monthly_budget": _nanos(monthly_budget)}
    changes = {k: v for k, v in given.items() if v is not None}
    if not changes:
        raise typer.BadParameter("nothing to change: give --rpm, --tpm, --concurrency or --monthly-budget")
    tenant = _run(database_url, lambda store: admin.update_tenant(store, name, **changes))
    shown = ", ".join(_limits(tenant.limits))
    console.print(f"tenant [bold]{tenant.name}[/bold]: rpm, tpm, concurrency, monthly budget = {shown}")


@tenants_app.command("list")
def list_tenants(database_url: DatabaseUrl = None) -> None:
    """The tenants and their limits."""
    table = Table("tenant", "id", "rpm", "tpm", "concurrency", "monthly budget")
    for t in _run(database_url, admin.list_tenants):
        table.add_row(t.name, t.tenant_id, *_limits(t.limits))
    console.print(table)


@keys_app.command("create")
def create_key(
    tenant: str,
    name: Annotated[str, typer.Option(help="what the key is for")] = "default",
    scope: Annotated[list[str] | None, typer.Option(help="a model the key may use (repeat); none: all")] = None,
    rpm: Rpm = None,
    tpm: Tpm = None,
    concurrency: Concurrency = None,
    monthly_budget: Budget = None,
    expires_in_days: Annotated[float | None, typer.Option(min=0, help="expiry; none: never")] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Create a key for TENANT and print it (the only time it is shown)."""
    expires = timedelta(days=expires_in_days) if expires_in_days is not None else None
    created = _run(
        database_url,
        lambda store: admin.create_key(
            store, tenant, name, tuple(scope or ()), Limits(rpm, tpm, concurrency, _nanos(monthly_budget)), expires
        ),
    )
    console.print(f"key {created.record.key_id} for {tenant}; store it now, it is not shown again:")
    typer.echo(created.secret)


@keys_app.command("list")
def list_keys(
    tenant: Annotated[str | None, typer.Option(help="only this tenant's keys")] = None, database_url: DatabaseUrl = None
) -> None:
    """The keys (prefix, scopes, limits, expiry, revocation); never the secrets."""
    table = Table("key id", "prefix", "tenant", "name", "scopes", "rpm", "tpm", "conc.", "budget", "expires", "revoked")
    rows: list[Any] = _run(database_url, lambda store: admin.list_keys(store, tenant))
    for k in rows:
        when = [f"{t:%Y-%m-%d %H:%M}" if t else "-" for t in (k.expires_at, k.revoked_at)]
        table.add_row(k.key_id, k.prefix, k.tenant.name, k.name, ",".join(k.scopes) or "*", *_limits(k.limits), *when)
    console.print(table)


@keys_app.command("revoke")
def revoke_key(
    key: Annotated[str, typer.Argument(help="key id or shown prefix")], database_url: DatabaseUrl = None
) -> None:
    """Revoke a key (every gateway replica refuses it within its key cache time)."""
    count = _run(database_url, lambda store: admin.revoke_key(store, key))
    if not count:
        raise typer.BadParameter(f"no active key {key!r}")
    console.print(f"revoked {count} key(s)")
