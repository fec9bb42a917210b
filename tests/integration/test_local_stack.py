"""The local stack itself: idempotent starts, and nothing committed is lost to a SIGKILL.

Each test runs its own broker or database in a scratch run folder (other ports), so the
session's shared stack is not disturbed.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from sqlalchemy.ext.asyncio import create_async_engine

from deploy.local import kafka, postgres
from deploy.local.common import StackPaths, stack_paths

pytestmark = pytest.mark.integration


@pytest.fixture
def scratch_paths() -> Iterator[StackPaths]:
    # Under the repo's cache, not /tmp: PostgreSQL runs as `postgres` and must reach its folder.
    shared = stack_paths()
    run = shared.run / f"scratch-{uuid.uuid4().hex[:8]}"
    (run / "logs").mkdir(parents=True)
    paths = StackPaths(cache=shared.cache, run=run)
    yield paths
    postgres.remove_data(paths)
    shutil.rmtree(run, ignore_errors=True)


async def consume_one_and_commit(bootstrap: str, topic: str, group: str) -> bytes:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), 30)
        await consumer.commit()
        return bytes(record.value)
    finally:
        await consumer.stop()


async def test_kafka_keeps_topics_and_committed_offsets_across_a_kill(scratch_paths):
    first = kafka.start(scratch_paths)
    assert kafka.start(scratch_paths)["pid"] == first["pid"]  # idempotent
    bootstrap, topic, group = first["bootstrap"], "restart-probe", "restart-probe-group"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    for value in (b"one", b"two"):
        await producer.send_and_wait(topic, value)
    await producer.stop()
    assert await consume_one_and_commit(bootstrap, topic, group) == b"one"

    kafka.kill(scratch_paths)
    assert not kafka.status(scratch_paths)["running"]
    second = kafka.start(scratch_paths)
    try:
        assert second["bootstrap"] == bootstrap and second["pid"] != first["pid"]
        assert await consume_one_and_commit(bootstrap, topic, group) == b"two"
    finally:
        kafka.stop(scratch_paths)
    assert not kafka.status(scratch_paths)["running"]


async def test_postgres_keeps_committed_rows_across_a_kill(scratch_paths):
    first = postgres.start(scratch_paths)
    assert postgres.start(scratch_paths)["pid"] == first["pid"]  # idempotent
    url = postgres.database_url("monitor", first)
    engine = create_async_engine(url)
    async with engine.begin() as connection:
        await connection.execute(sa.text("create table crash_probe (id int)"))
        await connection.execute(sa.text("insert into crash_probe values (7)"))
    await engine.dispose()

    postgres.kill(scratch_paths)
    assert not postgres.status(scratch_paths)["running"]
    second = postgres.start(scratch_paths)
    try:
        assert second["port"] == first["port"]
        engine = create_async_engine(url)
        async with engine.connect() as connection:
            assert (await connection.execute(sa.text("select id from crash_probe"))).scalar_one() == 7
        await engine.dispose()
    finally:
        postgres.stop(scratch_paths)
