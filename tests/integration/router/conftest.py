"""Fixtures of the router's integration tests: its own Triton servers and a router app per test."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from deploy.local import triton
from services.router.app import RouterRuntime, create_app, migrate
from services.router.settings import RouterSettings, StaticServer
from shared.events import ALLOCATIONS, INFERENCE_REQUESTS, INFERENCE_RESULTS, Event, InferenceRequested
from tests.integration.helpers import start_group_at_end

SERVERS = {"router-t1": "us-east-1", "router-t2": "eu-west-1"}


@pytest.fixture(scope="session")
def router_tritons() -> Iterator[dict[str, str]]:
    """Two Triton servers of the router's own (server id -> HTTP address), with echo and tinylm."""

    def start(name: str) -> str:
        info = triton.start_server(name, triton.PROFILES["h100_80gb"], models=["echo", "tinylm"], region=SERVERS[name])
        return str(info["http_url"])

    try:
        with ThreadPoolExecutor(2) as pool:
            addresses = dict(zip(SERVERS, pool.map(start, SERVERS), strict=True))
        yield addresses
    finally:
        for name in SERVERS:
            triton.stop_server(name)


def static(addresses: dict[str, str], names: tuple[str, ...] = tuple(SERVERS)) -> list[StaticServer]:
    """The test servers as static configuration, serving echo and tinylm under their own names."""
    return [
        StaticServer(
            server_id=name,
            endpoint=addresses[name],
            region=SERVERS[name],
            gpu_type="h100_80gb",
            cost_per_hour=2.0,
            capacity=4,
            models={"echo": "echo", "tinylm": "tinylm"},
        )
        for name in names
    ]


@contextlib.contextmanager
def private_topic(bootstrap: str, prefix: str) -> Iterator[str]:
    """A topic created for the block and deleted after it."""
    name = f"{prefix}.{uuid.uuid4().hex[:8]}"

    async def admin_call(create: bool) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            if create:
                await admin.create_topics([NewTopic(name, INFERENCE_REQUESTS.partitions, replication_factor=1)])
            else:
                await admin.delete_topics([name])
        finally:
            await admin.close()

    asyncio.run(admin_call(True))
    try:
        yield name
    finally:
        asyncio.run(admin_call(False))


@pytest.fixture(scope="session")
def requests_topic(kafka_bootstrap: str) -> Iterator[str]:
    """A request topic of the router tests' own: other engineers' requests never reach these routers,
    and theirs never get answers from ours (the shared topic carries everyone's test traffic)."""
    with private_topic(kafka_bootstrap, "test.router.requests") as name:
        yield name


@pytest.fixture(scope="session")
def reply_topic(kafka_bootstrap: str) -> Iterator[str]:
    """A reply topic, as a client that wants its results apart would create."""
    with private_topic(kafka_bootstrap, "test.router.replies") as name:
        yield name


@pytest.fixture
def make_settings(kafka_bootstrap: str, database_url: Any, requests_topic: str) -> Any:
    """Router settings with a unique consumer group, the schema migrated."""
    url = database_url("router")
    migrate(RouterSettings(database_url=url))

    def build(**overrides: Any) -> RouterSettings:
        values = {
            "kafka_bootstrap": kafka_bootstrap,
            "database_url": url,
            "consumer_group": f"test-router-{uuid.uuid4().hex[:8]}",
            "instance_id": uuid.uuid4().hex[:6],
            "health_interval_s": 0.3,
            "demand_window_s": 1.0,
            "requests_topic": requests_topic,
            "cold_start_models": [],
            "reply_topic_prefixes": ["inference.results.", "test."],
        }
        return RouterSettings(**(values | overrides))

    return build


@contextlib.asynccontextmanager
async def router_app(settings: RouterSettings, span_exporter: Any = None) -> AsyncIterator[RouterRuntime]:
    """Run a router app for the block, reading only messages sent during it."""
    bootstrap = settings.kafka_bootstrap
    await start_group_at_end(bootstrap, settings.group_id, settings.requests_topic)
    await start_group_at_end(bootstrap, f"{settings.group_id}-registry-{settings.instance_id}", ALLOCATIONS.name)
    app, runtime = create_app(settings, span_exporter)
    await app.start()
    try:
        yield runtime
    finally:
        await app.stop()


class Topic:
    """Reads one topic from its current end (records sent after `start`)."""

    def __init__(self, bootstrap: str, topic: str = INFERENCE_RESULTS.name) -> None:
        self.topic = topic
        self.group = f"test-read-{uuid.uuid4().hex[:8]}"
        self._consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=bootstrap, group_id=self.group, auto_offset_reset="earliest"
        )
        self._bootstrap = bootstrap
        self.values: list[dict[str, Any]] = []

    async def __aenter__(self) -> Topic:
        await start_group_at_end(self._bootstrap, self.group, self.topic)
        await self._consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._consumer.stop()

    async def until(self, want: Any, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Read until `want(values)` holds or `timeout` passes; return what was read."""
        deadline = time.monotonic() + timeout
        while not want(self.values) and time.monotonic() < deadline:
            for records in (await self._consumer.getmany(timeout_ms=200)).values():
                self.values.extend(json.loads(r.value) for r in records)
        return self.values


def results_for(values: list[dict[str, Any]], ids: set[str]) -> list[dict[str, Any]]:
    """The results among `values` whose request ids are in `ids`."""
    return [v for v in values if v.get("request_id") in ids]


def request(model: str, request_id: str, **fields: Any) -> InferenceRequested:
    """A request event for the tests."""
    return InferenceRequested(source="test", request_id=request_id, model_id=model, prompt=f"hi {request_id}", **fields)


async def send(bootstrap: str, events: list[Event], topic: str, key: str | None = None) -> None:
    """Produce events as a plain Kafka producer would (keyed by request id unless a key is given)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        for event in events:
            k = key or getattr(event, "request_id", None) or "k"
            await producer.send(topic, event.model_dump_json().encode(), key=k.encode())
        await producer.flush()
    finally:
        await producer.stop()


def past() -> datetime:
    """A deadline that has already passed."""
    return datetime(2020, 1, 1, tzinfo=UTC)
