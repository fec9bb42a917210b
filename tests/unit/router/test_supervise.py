"""Background tasks of the router are supervised: a death is reported, a cancellation is not."""

from __future__ import annotations

import asyncio
import logging
import os

import pytest

from services.router.hotpath import registry_feed
from services.router.hotpath.registry_feed import supervise


async def test_a_task_that_raises_is_reported() -> None:
    failures: list[BaseException] = []

    async def broken() -> None:
        raise ValueError("boom")

    task = supervise(asyncio.create_task(broken()), failures.append)
    await asyncio.gather(task, return_exceptions=True)
    await asyncio.sleep(0)  # done callbacks run on the next turn of the loop
    assert [repr(e) for e in failures] == [repr(ValueError("boom"))]


async def test_a_task_that_returns_is_reported_and_a_cancelled_one_is_not() -> None:
    failures: list[BaseException] = []

    async def returns() -> None:
        return None

    returned = supervise(asyncio.create_task(returns(), name="loop"), failures.append)
    cancelled = supervise(asyncio.create_task(asyncio.sleep(10)), failures.append)
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.gather(returned, cancelled, return_exceptions=True)
    await asyncio.sleep(0)
    assert len(failures) == 1 and "loop" in str(failures[0])


def test_the_default_ends_the_process_with_70(monkeypatch: pytest.MonkeyPatch) -> None:
    codes: list[int] = []
    monkeypatch.setattr(os, "_exit", codes.append)
    monkeypatch.setattr(logging, "shutdown", lambda: None)  # pytest's handlers stay open
    registry_feed.exit_on_task_failure(RuntimeError("dead"))
    assert codes == [70]
