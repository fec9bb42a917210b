"""The shared runner: every service's jobs are its relay, its rounds and retention; start and stop in order."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from sqlalchemy import MetaData

from shared.jobs import Job, loop, periodic
from shared.outbox import outbox_table
from shared.retention import Kept
from shared.runtime import ServiceApp, create_runtime
from shared.settings import ServiceSettings

OUTBOX = outbox_table(MetaData())


class Sample(ServiceApp[ServiceSettings, None]):
    """A service with one round; records what the runner calls."""

    def __init__(self) -> None:
        settings = ServiceSettings(service_name="sample")
        super().__init__(create_runtime(settings), settings, None, OUTBOX, relay_poll_s=0.2)
        self.calls: list[str] = []

    def rounds(self) -> Sequence[Job]:
        return (periodic("sample round", 3600, self.prepare),)

    def retained(self) -> Sequence[Kept]:
        return (Kept(OUTBOX, "published_at", 60.0),)

    async def prepare(self) -> None:
        self.calls.append("prepare")

    async def release(self) -> None:
        self.calls.append("release")


def test_the_jobs_are_the_relay_the_rounds_and_retention_in_that_order():
    jobs = Sample().jobs()
    assert [job.name for job in jobs] == ["sample outbox relay", "sample round", "sample retention"]
    # The relay is cancelled on stop; a round and retention finish what they started.
    assert [job.graceful for job in jobs] == [False, True, True]


async def test_start_prepares_then_runs_the_jobs_and_stop_ends_them_then_releases():
    app = Sample()

    async def idle() -> None:
        await asyncio.Event().wait()

    def jobs() -> Sequence[Job]:
        return (loop("sample idle", idle),)  # no database: the real relay would poll it

    app.jobs = jobs  # type: ignore[method-assign]
    await app.start()
    assert app.calls == ["prepare"] and app.background.names == ["sample idle"]
    await app.stop()
    assert app.calls == ["prepare", "release"] and app.background.names == []
    await app.runtime.close()


def test_a_service_that_subscribes_without_a_delivery_attempt_table_fails_at_start_up():
    from shared.events import DEMAND

    async def on_demand(event) -> None: ...

    with pytest.raises(LookupError, match="delivery_attempt"):
        Sample().subscribe(DEMAND, on_demand)


def test_the_delivery_counts_are_pruned_beside_what_the_service_retains_and_used_by_its_subscribers():
    from shared.db import service_metadata
    from shared.delivery import SqlDeliveryLedger, delivery_attempt_table

    metadata = service_metadata("sample")
    outbox, table = outbox_table(metadata), delivery_attempt_table(metadata)
    settings = ServiceSettings(service_name="sample")
    app = ServiceApp(create_runtime(settings), settings, None, outbox)
    assert [(kept.table, kept.column, kept.keep_s) for kept in app.pruned()] == [
        (table, "updated_at", settings.inbox_retention_s)
    ]
    ledger = app.delivery_ledger()
    assert isinstance(ledger, SqlDeliveryLedger) and ledger.table is table
