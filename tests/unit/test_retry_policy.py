"""Handler errors: permanent ones are retried a bounded number of times, transient ones re-raised."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import OperationalError

from shared.deadletter import RetryPolicy, _apply

FAST = RetryPolicy(attempts=3, backoff_s=0.0, transient_pause_s=0.0)


async def test_a_handler_that_succeeds_is_called_once():
    calls = []

    async def handler(event):
        calls.append(event)

    assert await _apply(handler, "e", FAST) is None
    assert calls == ["e"]


async def test_a_permanent_error_is_retried_then_returned_for_the_dead_letter():
    calls = []

    async def handler(event):
        calls.append(event)
        raise ValueError("bad model id")

    error = await _apply(handler, "e", FAST)
    assert isinstance(error, ValueError) and len(calls) == 3


async def test_a_flaky_handler_succeeds_on_retry():
    calls = []

    async def handler(event):
        calls.append(event)
        if len(calls) < 2:
            raise ValueError("once")

    assert await _apply(handler, "e", FAST) is None
    assert len(calls) == 2


async def test_a_transient_error_is_raised_so_the_offset_stays_uncommitted():
    async def handler(event):
        raise OperationalError("select 1", {}, ConnectionRefusedError())

    with pytest.raises(OperationalError):
        await _apply(handler, "e", FAST)
