"""The gateway's repository: the Protocol its use cases see, and its SQL implementation."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from services.gateway.adapters import keys_tables, limits_tables, meter_tables
from services.gateway.adapters.orm import inbox, outbox
from services.gateway.domain.keys import ApiKey, Tenant
from services.gateway.domain.limits import Claim, Limits, Refusal, Settlement
from services.gateway.domain.metering import Metered, MeterReading
from shared.events import Event, Topic
from shared.unit_of_work import SqlRepository, Transactions, UnitOfWork, unit_of_work


class GatewayRepository(Protocol):
    """Everything the gateway's use cases read and write, in one transaction."""

    async def announce(self, topic: Topic, event: Event, key: str) -> None:
        """Queue an event to publish after the commit (the outbox)."""

    async def admit(
        self, claims: Sequence[Claim], metered: Sequence[Metered] = (), now: datetime | None = None
    ) -> bool:
        """Raise the counts of all `claims` under every limit and meter `metered`; False: refused (roll back)."""

    async def explain(self, claim: Claim, now: datetime) -> Refusal:
        """Which limit refuses `claim`."""

    async def settle(self, settlements: Sequence[Settlement]) -> None:
        """Replace reservations by what was used; end the leases."""

    async def reap(self, now: datetime) -> int:
        """End leases past their time (a replica died); how many."""

    async def key_by_hash(self, key_hash: str) -> ApiKey | None:
        """The key with this SHA-256."""

    async def keys(self, tenant_name: str | None = None) -> list[ApiKey]:
        """Every key (of one tenant)."""

    async def add_key(self, key: ApiKey, key_hash: str) -> None:
        """Store a new key by its hash."""

    async def revoke(self, key_id_or_prefix: str, now: datetime) -> int:
        """Revoke a key; how many were."""

    async def tenant_by_name(self, name: str) -> Tenant | None:
        """The tenant called `name`."""

    async def tenants(self) -> list[Tenant]:
        """Every tenant."""

    async def add_tenant(self, tenant: Tenant, now: datetime) -> None:
        """Store a new tenant."""

    async def set_tenant_limits(self, tenant_id: str, limits: Limits) -> None:
        """Replace a tenant's limits."""

    async def meter(self, usage: Sequence[Metered], now: datetime) -> None:
        """Add what finished requests used to the per tenant x model meter."""

    async def take_meter(self, now: datetime) -> list[MeterReading]:
        """Read and empty the meter: one reading per tenant x model, with the tenant's month so far."""


class SqlGatewayRepository(SqlRepository):
    """The repository over one session."""

    inbox_table = inbox
    outbox_table = outbox

    async def admit(
        self, claims: Sequence[Claim], metered: Sequence[Metered] = (), now: datetime | None = None
    ) -> bool:
        return await limits_tables.admit(self._session, claims, metered, now)

    async def explain(self, claim: Claim, now: datetime) -> Refusal:
        return await limits_tables.explain(self._session, claim, now)

    async def settle(self, settlements: Sequence[Settlement]) -> None:
        await limits_tables.settle(self._session, settlements)

    async def reap(self, now: datetime) -> int:
        return await limits_tables.reap(self._session, now)

    async def key_by_hash(self, key_hash: str) -> ApiKey | None:
        return await keys_tables.key_by_hash(self._session, key_hash)

    async def keys(self, tenant_name: str | None = None) -> list[ApiKey]:
        return await keys_tables.keys(self._session, tenant_name)

    async def add_key(self, key: ApiKey, key_hash: str) -> None:
        await keys_tables.add_key(self._session, key, key_hash)

    async def revoke(self, key_id_or_prefix: str, now: datetime) -> int:
        return await keys_tables.revoke(self._session, key_id_or_prefix, now)

    async def tenant_by_name(self, name: str) -> Tenant | None:
        return await keys_tables.tenant_by_name(self._session, name)

    async def tenants(self) -> list[Tenant]:
        return await keys_tables.tenants(self._session)

    async def add_tenant(self, tenant: Tenant, now: datetime) -> None:
        await keys_tables.add_tenant(self._session, tenant, now)

    async def set_tenant_limits(self, tenant_id: str, limits: Limits) -> None:
        await keys_tables.set_tenant_limits(self._session, tenant_id, limits)

    async def meter(self, usage: Sequence[Metered], now: datetime) -> None:
        await meter_tables.add(self._session, usage, now)

    async def take_meter(self, now: datetime) -> list[MeterReading]:
        return await meter_tables.take(self._session, now)


def gateway_store(database: Transactions[GatewayRepository]) -> UnitOfWork[GatewayRepository]:
    """The gateway's unit of work over a session factory (or a fake, as it is)."""
    return unit_of_work(database, SqlGatewayRepository)
