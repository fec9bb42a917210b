"""The unit of work, once for every service: a transaction that yields the service's repository.

A use case opens `store.transaction()` and gets a repository bound to that one transaction;
every read and write of the message or round goes through it, and it commits when the block
ends (rolls back on an error). Each service binds its SQL repository once:

    def cost_store(database: Transactions[CostRepository]) -> UnitOfWork[CostRepository]:
        return unit_of_work(database, SqlCostRepository)

so its use cases accept the app's session factory or a fake unit of work (unit tests).
`SqlRepository` is the base of those SQL repositories: bound to one session, with the inbox and
outbox every service keeps.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import ClassVar, Generic, Protocol, TypeAlias, TypeVar

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.events import Event, Topic
from shared.inbox import first_delivery
from shared.outbox import add_to_outbox

R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)


class UnitOfWork(Protocol[R_co]):
    """Opens transactions on a service's state, each with the repository bound to it."""

    def transaction(self) -> AbstractAsyncContextManager[R_co]:
        """A repository bound to a new transaction: committed when the block ends, rolled back on error."""


@dataclass(frozen=True)
class SqlUnitOfWork(Generic[R]):
    """Transactions from a session factory; `repository` builds the repository on each one's session."""

    sessions: async_sessionmaker[AsyncSession]
    repository: Callable[[AsyncSession], R]

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[R]:
        """A repository bound to a new transaction: committed when the block ends, rolled back on error."""
        async with self.sessions.begin() as session:
            yield self.repository(session)


# What use cases accept: the app's session factory, or any unit of work (a fake in unit tests).
Transactions: TypeAlias = async_sessionmaker[AsyncSession] | UnitOfWork[R]


def unit_of_work(database: Transactions[R], repository: Callable[[AsyncSession], R]) -> UnitOfWork[R]:
    """The unit of work over a session factory with `repository`, or `database` itself when it is one."""
    return SqlUnitOfWork(database, repository) if isinstance(database, async_sessionmaker) else database


class SqlRepository:
    """A SQL repository bound to one session (the caller owns the transaction), with its service's inbox and outbox.

    A service's repository names its tables and mixes in its own `*Tables`:
    `class SqlCostRepository(SqlRepository, FleetTables, AdviceTables): inbox_table = inbox; ...`
    """

    inbox_table: ClassVar[Table]
    outbox_table: ClassVar[Table]

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def first_delivery(self, consumer: str, event_id: uuid.UUID) -> bool:
        """Record the event in the inbox; False when this consumer has applied it already."""
        return await first_delivery(self._session, self.inbox_table, consumer, event_id)

    async def announce(self, topic: Topic, event: Event, key: str) -> None:
        """Queue an event in the outbox; the relay publishes it after the commit."""
        await add_to_outbox(self._session, self.outbox_table, topic, event, key=key)
