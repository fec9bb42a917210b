"""The unit of work, once for every service: a transaction that yields the service's repository.

A use case opens `store.transaction()` and gets a repository bound to that one transaction;
every read and write of the message or round goes through it, and it commits when the block
ends (rolls back on an error). Each service binds its SQL repository once:

    def cost_store(database: Transactions[CostRepository]) -> UnitOfWork[CostRepository]:
        return unit_of_work(database, SqlCostRepository)

so its use cases accept the app's session factory or a fake unit of work (unit tests).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Generic, Protocol, TypeAlias, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

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
