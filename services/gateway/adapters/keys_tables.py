"""Tenants and hashed API keys in SQL."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.gateway.adapters.orm import api_key, tenant
from services.gateway.domain.budgets import NANOS_PER_USD
from services.gateway.domain.keys import ApiKey, Tenant
from services.gateway.domain.limits import Limits


def _limits(row: Any, prefix: str = "") -> Limits:
    budget = getattr(row, f"{prefix}monthly_budget_usd")
    return Limits(
        getattr(row, f"{prefix}rpm"),
        getattr(row, f"{prefix}tpm"),
        getattr(row, f"{prefix}concurrency"),
        int(budget * NANOS_PER_USD) if budget is not None else None,
    )


def budget_usd(limits: Limits) -> Decimal | None:
    """The budget column's value (exact: nano-dollars are the column's scale)."""
    return None if limits.monthly_budget is None else Decimal(limits.monthly_budget) / NANOS_PER_USD


def _tenant(row: Any, prefix: str = "") -> Tenant:
    return Tenant(getattr(row, f"{prefix}tenant_id"), getattr(row, f"{prefix}name"), _limits(row, prefix))


_KEY_COLUMNS = [c for c in api_key.c if c.name != "key_hash"]
_TENANT_COLUMNS = [c.label(f"t_{c.name}") for c in tenant.c]


def _key(row: Any) -> ApiKey:
    return ApiKey(
        key_id=row.key_id,
        tenant=_tenant(row, "t_"),
        name=row.name,
        prefix=row.prefix,
        scopes=tuple(row.scopes or ()),
        limits=_limits(row),
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
    )


def _keys_query() -> Any:
    return select(*_KEY_COLUMNS, *_TENANT_COLUMNS).join(tenant, tenant.c.tenant_id == api_key.c.tenant_id)


async def key_by_hash(session: AsyncSession, key_hash: str) -> ApiKey | None:
    """The key whose SHA-256 is `key_hash`, with its tenant; None if there is none."""
    row = (await session.execute(_keys_query().where(api_key.c.key_hash == key_hash))).first()
    return _key(row) if row else None


async def keys(session: AsyncSession, tenant_name: str | None = None) -> list[ApiKey]:
    """Every key (of one tenant), oldest first."""
    query = _keys_query().order_by(api_key.c.created_at)
    if tenant_name:
        query = query.where(tenant.c.name == tenant_name)
    return [_key(row) for row in await session.execute(query)]


async def add_key(session: AsyncSession, key: ApiKey, key_hash: str) -> None:
    """Store a new key by its hash."""
    limits = key.limits
    await session.execute(
        insert(api_key).values(
            key_id=key.key_id,
            tenant_id=key.tenant.tenant_id,
            name=key.name,
            key_hash=key_hash,
            prefix=key.prefix,
            scopes=list(key.scopes),
            rpm=limits.rpm,
            tpm=limits.tpm,
            concurrency=limits.concurrency,
            monthly_budget_usd=budget_usd(limits),
            created_at=key.created_at,
            expires_at=key.expires_at,
        )
    )


async def revoke(session: AsyncSession, key_id_or_prefix: str, now: datetime) -> int:
    """Revoke the key with this id (or shown prefix); how many were revoked."""
    result = await session.execute(
        update(api_key)
        .where(or_(api_key.c.key_id == key_id_or_prefix, api_key.c.prefix == key_id_or_prefix))
        .where(api_key.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def tenant_by_name(session: AsyncSession, name: str) -> Tenant | None:
    """The tenant called `name`."""
    row = (await session.execute(select(tenant).where(tenant.c.name == name))).first()
    return _tenant(row) if row else None


async def tenants(session: AsyncSession) -> list[Tenant]:
    """Every tenant, by name."""
    return [_tenant(row) for row in await session.execute(select(tenant).order_by(tenant.c.name))]


async def add_tenant(session: AsyncSession, new: Tenant, now: datetime) -> None:
    """Store a new tenant."""
    limits = new.limits
    await session.execute(
        insert(tenant).values(
            tenant_id=new.tenant_id,
            name=new.name,
            rpm=limits.rpm,
            tpm=limits.tpm,
            concurrency=limits.concurrency,
            monthly_budget_usd=budget_usd(limits),
            created_at=now,
        )
    )


async def set_tenant_limits(session: AsyncSession, tenant_id: str, limits: Limits) -> None:
    """Replace a tenant's limits (every replica sees them within its key cache time)."""
    await session.execute(
        update(tenant)
        .where(tenant.c.tenant_id == tenant_id)
        .values(
            rpm=limits.rpm,
            tpm=limits.tpm,
            concurrency=limits.concurrency,
            monthly_budget_usd=budget_usd(limits),
        )
    )
