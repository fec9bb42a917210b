"""The leader lock against the real PostgreSQL: of two contenders one wins, and the lock frees when done."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db import create_engine, session_factory
from shared.leader import leading, lock_for_transaction, lock_key, try_lead

pytestmark = pytest.mark.integration


@pytest.fixture
async def sessions(database_url) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(database_url("scaler"), "scaler", pool_size=4)
    yield session_factory(engine)
    await engine.dispose()


def unique(what: str) -> str:
    return f"test.{what}.{uuid.uuid4().hex}"  # runs sharing the database never contend


def test_keys_are_stable_signed_64_bit_and_differ_by_name():
    assert lock_key("scaler.evaluation") == lock_key("scaler.evaluation")
    assert lock_key("scaler.evaluation") != lock_key("cost.cycle")
    assert -(2**63) <= lock_key("cost.cycle") < 2**63


async def test_of_two_transactions_one_leads_until_it_ends(sessions):
    name = unique("xact")
    async with sessions.begin() as first, sessions.begin() as second:
        assert await try_lead(first, name)
        assert not await try_lead(second, name)
    async with sessions.begin() as third:  # both transactions ended: the lock is free again
        assert await try_lead(third, name)


async def test_a_waiting_transaction_blocks_until_the_holder_commits(sessions):
    name, order = unique("xact-wait"), []

    async def second() -> None:
        async with sessions.begin() as session:
            await lock_for_transaction(session, name)
            order.append("second holds")

    async with sessions.begin() as first:
        await lock_for_transaction(first, name)
        waiting = asyncio.create_task(second())
        await asyncio.sleep(0.3)
        assert not waiting.done()  # queued behind the first transaction
        async with sessions.begin() as other:  # the same lock as try_lead's: a skipper sees it taken
            assert not await try_lead(other, name)
        order.append("first commits")
    await asyncio.wait_for(waiting, 10)
    assert order == ["first commits", "second holds"]


async def test_of_two_holders_one_leads_and_the_lock_frees_after_the_block(sessions):
    name = unique("session")
    async with leading(sessions, name) as first:
        async with leading(sessions, name) as second:
            assert (first, second) == (True, False)
        async with sessions.begin() as session:
            assert not await try_lead(session, name)
    async with leading(sessions, name) as again:
        assert again


async def test_waiting_contenders_take_turns(sessions):
    name, inside, overlaps = unique("wait"), [0], []

    async def turn() -> None:
        async with leading(sessions, name, wait=True) as held:
            assert held
            inside[0] += 1
            overlaps.append(inside[0])
            await asyncio.sleep(0.05)
            inside[0] -= 1

    await asyncio.wait_for(asyncio.gather(turn(), turn(), turn()), 10)
    assert overlaps == [1, 1, 1]
