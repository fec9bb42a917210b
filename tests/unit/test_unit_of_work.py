"""shared.unit_of_work: a session factory gets the SQL unit of work, a fake is used as it is."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.unit_of_work import SqlUnitOfWork, unit_of_work


class Repository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session


class FakeUnitOfWork:
    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[str]:
        yield "fake repository"


def test_a_session_factory_gets_the_sql_unit_of_work_over_it():
    sessions: async_sessionmaker[AsyncSession] = async_sessionmaker()
    built = unit_of_work(sessions, Repository)
    assert isinstance(built, SqlUnitOfWork)
    assert (built.sessions, built.repository) == (sessions, Repository)


async def test_a_fake_unit_of_work_is_used_as_it_is():
    fake = FakeUnitOfWork()
    assert unit_of_work(fake, lambda _session: "sql repository") is fake
    async with unit_of_work(fake, lambda _session: "sql repository").transaction() as repo:
        assert repo == "fake repository"
