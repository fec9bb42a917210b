""" "One replica runs this": PostgreSQL advisory locks named by a string, one implementation.

Three forms, pick by how long the turn lasts and whether the others wait or skip:

- `try_lead(session, "cost.cycle")` inside a transaction: True when this replica holds the
  lock, which PostgreSQL releases at the transaction's end (commit or rollback). Use it for a
  round that runs in one transaction; replicas that get False skip the round.

      async with sessions.begin() as session:
          if not await try_lead(session, "cost.cycle"):
              return None  # another replica runs this round
          ...

- `await lock_for_transaction(session, "allocator.servers")` inside a transaction: waits until
  the lock is free and holds it until the transaction ends. A mutex rather than leadership:
  every replica does the work, one at a time (a `lock_timeout` set on the transaction bounds
  the wait).

- `async with leading(sessions, "scaler.evaluation") as leader:` holds a session-level lock on a
  connection of its own while the block runs (the block may open other sessions and commit
  several times); `leader` says whether this replica got it. `wait=True` queues for the lock
  instead (migrations at start-up: every replica waits, one at a time migrates).

      async with leading(sessions, "scaler.evaluation") as leader:
          if not leader:
              return None
          ...

The lock is the database's, so it holds across every replica of every service sharing that
database; keys come from the name (`lock_key`), so name locks `<service>.<what>`.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker


def lock_key(name: str) -> int:
    """The advisory lock key of `name`: a stable signed 64-bit hash (the same in every process and release)."""
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


async def try_lead(session: AsyncSession, name: str) -> bool:
    """Take `name`'s lock for the rest of this transaction if it is free; False when another holds it."""
    taken = await session.execute(select(func.pg_try_advisory_xact_lock(lock_key(name))))
    return bool(taken.scalar_one())


async def lock_for_transaction(session: AsyncSession, name: str) -> None:
    """Wait for `name`'s lock and hold it for the rest of this transaction (released at commit or rollback)."""
    await session.execute(select(func.pg_advisory_xact_lock(lock_key(name))))


@asynccontextmanager
async def leading(sessions: async_sessionmaker[AsyncSession], name: str, wait: bool = False) -> AsyncIterator[bool]:
    """Hold `name`'s lock while the block runs; yields whether this replica holds it (always True with `wait`)."""
    key = lock_key(name)
    async with sessions() as holder:
        if wait:
            await holder.execute(select(func.pg_advisory_lock(key)))
            held = True
        else:
            held = bool((await holder.execute(select(func.pg_try_advisory_lock(key)))).scalar_one())
        try:
            yield held
        finally:
            if held:
                # Closing the session only returns the connection to the pool: the lock would stay.
                await holder.execute(select(func.pg_advisory_unlock(key)))
