"""Supervised jobs: a dying job is reported, a cancelled one is not, `every` survives a failing round."""

from __future__ import annotations

import asyncio
import logging

import pytest

from shared.jobs import Jobs, every, loop, periodic


def recording_jobs() -> tuple[Jobs, list[tuple[str, BaseException]]]:
    failures: list[tuple[str, BaseException]] = []
    return Jobs(on_failure=lambda name, error: failures.append((name, error))), failures


async def test_a_job_that_raises_or_returns_is_reported_with_its_name():
    jobs, failures = recording_jobs()

    async def dies() -> None:
        raise ValueError("boom")

    async def returns() -> None:
        return None

    jobs.start(loop("dies", dies), loop("returns", returns))
    await asyncio.sleep(0.01)
    assert sorted((name, type(error).__name__) for name, error in failures) == [
        ("dies", "ValueError"),
        ("returns", "RuntimeError"),
    ]


async def test_stopping_cancels_every_job_and_reports_none():
    jobs, failures = recording_jobs()
    jobs.start(loop("sleeper", lambda: asyncio.sleep(3600)), periodic("rounds", 3600, lambda: asyncio.sleep(0)))
    await asyncio.sleep(0.01)
    assert sorted(jobs.names) == ["rounds", "sleeper"]
    await asyncio.wait_for(jobs.stop(), 1.0)
    assert failures == [] and jobs.names == []


async def test_a_round_in_progress_finishes_before_stop_returns():
    jobs, failures = recording_jobs()
    finished: list[bool] = []

    async def slow_round() -> None:
        await asyncio.sleep(0.2)
        finished.append(True)

    jobs.start(periodic("slow", 3600, slow_round, immediately=True))
    await asyncio.sleep(0.05)
    await jobs.stop()
    assert finished == [True] and failures == []


async def test_a_round_past_its_grace_is_cancelled():
    jobs, failures = recording_jobs()
    jobs.start(periodic("stuck", 3600, lambda: asyncio.sleep(3600), immediately=True))
    await asyncio.sleep(0.01)
    await asyncio.wait_for(jobs.stop(grace_s=0.05), 1.0)
    assert failures == []


async def test_every_survives_a_failing_round_and_logs_it_once(caplog: pytest.LogCaptureFixture):
    calls: list[int] = []

    async def flaky() -> None:
        calls.append(1)
        if len(calls) <= 3:
            raise ConnectionError("database down")

    with caplog.at_level(logging.INFO, logger="shared.jobs"):
        task = asyncio.create_task(every(0.01, flaky, "flaky round", immediately=True))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert len(calls) > 4  # it went on after the failures
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "failed" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].exc_info is not None  # rate-limited, first with its traceback
    assert any("works again after 3 failed rounds" in r.getMessage() for r in caplog.records)


async def test_every_waits_a_full_interval_first_unless_told_to_start_at_once():
    calls: list[str] = []

    async def record() -> None:
        calls.append("ran")

    stopping = asyncio.Event()
    late = asyncio.create_task(every(3600, record, "late", stopping=stopping))
    early = asyncio.create_task(every(3600, record, "early", immediately=True, stopping=stopping))
    await asyncio.sleep(0.02)
    stopping.set()
    await asyncio.wait_for(asyncio.gather(late, early), 1.0)
    assert calls == ["ran"]


def test_by_default_a_dead_job_ends_the_process_with_code_70(monkeypatch: pytest.MonkeyPatch):
    import os

    from shared.jobs import exit_loudly

    codes: list[int] = []
    monkeypatch.setattr(os, "_exit", codes.append)
    monkeypatch.setattr(logging, "shutdown", lambda: None)  # pytest's handlers stay open
    exit_loudly("relay", ValueError("boom"))
    assert codes == [70]
