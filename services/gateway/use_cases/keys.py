"""Operators' use cases: tenants and their API keys (the key is shown once, stored only as a hash)."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from services.gateway.adapters.repository import GatewayRepository
from services.gateway.domain.keys import ApiKey, Tenant, display_prefix, hash_key, make_key
from services.gateway.domain.limits import Limits
from shared.unit_of_work import UnitOfWork


class AdminError(LookupError):
    """An operator's request that cannot be done (no such tenant, a duplicate name)."""


@dataclass(frozen=True)
class CreatedKey:
    """A new key: the stored record, and the key itself (shown once, never stored)."""

    record: ApiKey
    secret: str


async def create_tenant(store: UnitOfWork[GatewayRepository], name: str, limits: Limits) -> Tenant:
    """A new tenant with its limits."""
    async with store.transaction() as repository:
        if await repository.tenant_by_name(name) is not None:
            raise AdminError(f"tenant {name!r} exists")
        tenant = Tenant(uuid.uuid4().hex, name, limits)
        await repository.add_tenant(tenant, datetime.now(UTC))
    return tenant


async def update_tenant(store: UnitOfWork[GatewayRepository], name: str, **changes: int | None) -> Tenant:
    """Change some of a tenant's limits (`rpm`, `tpm`, `concurrency`, `monthly_budget`); the others stay."""
    async with store.transaction() as repository:
        tenant = await repository.tenant_by_name(name)
        if tenant is None:
            raise AdminError(f"no tenant {name!r}")
        updated = Tenant(tenant.tenant_id, tenant.name, replace(tenant.limits, **changes))
        await repository.set_tenant_limits(tenant.tenant_id, updated.limits)
    return updated


async def list_tenants(store: UnitOfWork[GatewayRepository]) -> list[Tenant]:
    """Every tenant."""
    async with store.transaction() as repository:
        return await repository.tenants()


async def create_key(
    store: UnitOfWork[GatewayRepository],
    tenant_name: str,
    name: str,
    scopes: tuple[str, ...] = (),
    limits: Limits = Limits(),  # noqa: B008 - frozen
    expires_in: timedelta | None = None,
) -> CreatedKey:
    """A new key of `tenant_name`; its secret is returned here and nowhere else."""
    now = datetime.now(UTC)
    secret = make_key(secrets.token_urlsafe(32))  # 256 bits: SHA-256 of it cannot be searched back
    async with store.transaction() as repository:
        tenant = await repository.tenant_by_name(tenant_name)
        if tenant is None:
            raise AdminError(f"no tenant {tenant_name!r}")
        record = ApiKey(
            key_id=uuid.uuid4().hex,
            tenant=tenant,
            name=name,
            prefix=display_prefix(secret),
            scopes=scopes,
            limits=limits,
            created_at=now,
            expires_at=now + expires_in if expires_in else None,
        )
        await repository.add_key(record, hash_key(secret))
    return CreatedKey(record, secret)


async def list_keys(store: UnitOfWork[GatewayRepository], tenant_name: str | None = None) -> list[ApiKey]:
    """Every key (of one tenant), without secrets."""
    async with store.transaction() as repository:
        return await repository.keys(tenant_name)


async def revoke_key(store: UnitOfWork[GatewayRepository], key_id_or_prefix: str) -> int:
    """Revoke a key by id or shown prefix; how many were revoked."""
    async with store.transaction() as repository:
        return await repository.revoke(key_id_or_prefix, datetime.now(UTC))
