"""The Batch API through the official `openai` SDK, on a real router, Triton, Kafka and PostgreSQL.

A round trip, an invalid file, a cancel, and the restart test: the gateway replica running a batch
is stopped and another started, and the router restarted, mid-batch; every custom_id still gets
exactly one output line. Each stack here has a batch reply topic and consumer group of its own.
"""

from __future__ import annotations

import contextlib
import io
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from openai import OpenAI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from services.gateway.domain.batches import line_request_id
from services.gateway.domain.limits import Limits
from services.gateway.jobs import GatewayApp
from services.gateway.settings import GatewaySettings
from services.gateway.use_cases import keys as admin
from services.router.app import create_app as create_router
from services.router.app import migrate as migrate_router
from services.router.settings import RouterSettings
from shared.events import DEADLETTER, InferenceRequested
from tests.integration.gateway.conftest import Host, gateway_app, gateway_settings
from tests.integration.router.conftest import Topic, private_topic, router_app, static

pytestmark = pytest.mark.integration
FINAL = ("completed", "failed", "expired", "cancelled")


@dataclass
class Stack:
    """A router and gateway replicas that a test can stop and start, on a private request and batch topic."""

    host: Host
    kafka: str
    database: str
    requests_topic: str
    batch_topic: str
    group: str
    router_settings: RouterSettings
    exits: dict[str, contextlib.AsyncExitStack]
    apps: dict[str, GatewayApp]

    def settings(self) -> GatewaySettings:
        return gateway_settings(
            self.kafka,
            self.database,
            self.requests_topic,
            batch_reply_topic=self.batch_topic,
            batch_consumer_group=self.group,
            batch_pool=self.group,  # other sessions' gateways on this database never run these batches
            batch_interval_s=0.1,
            batch_lease_s=2.0,
            batch_line_timeout_s=15.0,
            batch_resend_after_s=1.0,
            batch_window=32,
        )

    def start_gateway(self, name: str) -> str:
        """Start a replica; its base URL."""
        settings = self.settings()
        self.apps[name] = self._enter(name, gateway_app(settings))
        return f"http://127.0.0.1:{settings.http_port}/v1"

    def start_router(self, fresh: bool) -> None:
        """Start the router: fresh (its group from the topic's end), or again after a stop (its committed offsets)."""
        self._enter("router", router_app(self.router_settings) if fresh else _router_again(self.router_settings))

    def stop(self, name: str) -> None:
        self.host.call(self.exits.pop(name).aclose())
        self.apps.pop(name, None)

    def close(self) -> None:
        for name in [n for n in self.exits if n != "router"] + ["router"]:
            if name in self.exits:
                self.stop(name)

    def key(self) -> str:
        """A fresh tenant and key, with no limits."""
        store = next(iter(self.apps.values())).store
        tenant = f"test-{uuid.uuid4().hex[:10]}"
        self.host.call(admin.create_tenant(store, tenant, Limits()))
        return self.host.call(admin.create_key(store, tenant, "batch", (), Limits())).secret

    def _enter(self, name: str, context: Any) -> Any:
        stack = contextlib.AsyncExitStack()
        self.exits[name] = stack
        return self.host.call(stack.enter_async_context(context))


@contextlib.asynccontextmanager
async def _router_again(settings: RouterSettings) -> AsyncIterator[object]:
    app, runtime = create_router(settings)
    await app.start()
    try:
        yield runtime
    finally:
        await app.stop()


@contextlib.contextmanager
def stack_of(host: Host, kafka: str, database_url: Any, gateway_database: str, triton_url: str) -> Iterator[Stack]:
    with private_topic(kafka, "test.gateway.batch.requests") as topic:
        router_url = database_url("router")
        migrate_router(RouterSettings(database_url=router_url))
        router = RouterSettings(
            kafka_bootstrap=kafka,
            database_url=router_url,
            consumer_group=f"test-batch-router-{uuid.uuid4().hex[:8]}",
            instance_id=uuid.uuid4().hex[:6],
            requests_topic=topic,
            static_servers=static({"router-t1": triton_url}, ("router-t1",)),
            follow_allocations=False,
            cold_start_models=[],
            reply_topic_prefixes=["inference.replies."],
        )
        batch_topic = f"inference.replies.test-batch-{uuid.uuid4().hex[:8]}"
        stack = Stack(
            host, kafka, gateway_database, topic, batch_topic, f"test-batch-{uuid.uuid4().hex[:8]}", router, {}, {}
        )
        stack.start_router(fresh=True)
        try:
            yield stack
        finally:
            stack.close()
            host.call(_delete_topic(kafka, batch_topic))


async def _delete_topic(kafka: str, topic: str) -> None:
    client = AIOKafkaAdminClient(bootstrap_servers=kafka)
    await client.start()
    try:
        with contextlib.suppress(Exception):
            await client.delete_topics([topic])
    finally:
        await client.close()


@pytest.fixture(scope="module")
def stack(
    host: Host, kafka_bootstrap: str, database_url: Any, gateway_database: str, gateway_triton: str
) -> Iterator[Stack]:
    with stack_of(host, kafka_bootstrap, database_url, gateway_database, gateway_triton) as running:
        running.start_gateway("a")
        yield running


@pytest.fixture(scope="module")
def sdk(stack: Stack) -> OpenAI:
    url = f"http://127.0.0.1:{stack.apps['a'].settings.http_port}/v1"
    return OpenAI(base_url=url, api_key=stack.key(), max_retries=0, timeout=30)


def lines(n: int, model: str = "echo", prefix: str = "req") -> bytes:
    """A JSONL input of n chat requests."""
    rows = [
        {
            "custom_id": f"{prefix}-{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": model, "messages": [{"role": "user", "content": f"line {i}"}], "max_tokens": 6},
        }
        for i in range(n)
    ]
    return "\n".join(json.dumps(r) for r in rows).encode() + b"\n"


def submit(sdk: OpenAI, data: bytes) -> str:
    uploaded = sdk.files.create(file=("input.jsonl", io.BytesIO(data)), purpose="batch")
    assert uploaded.object == "file" and uploaded.bytes == len(data) and uploaded.purpose == "batch"
    batch = sdk.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h", metadata={"run": "test"}
    )
    assert batch.object == "batch" and batch.status == "validating" and batch.input_file_id == uploaded.id
    return batch.id


def wait(sdk: OpenAI, batch_id: str, until: Any = lambda b: b.status in FINAL, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch = sdk.batches.retrieve(batch_id)
        if until(batch):
            return batch
        time.sleep(0.1)
    raise AssertionError(f"batch {batch_id} is still {batch.status} ({batch.request_counts}) after {timeout} s")


def output(sdk: OpenAI, file_id: str | None) -> list[dict[str, Any]]:
    if file_id is None:
        return []
    return [json.loads(line) for line in sdk.files.content(file_id).text.splitlines() if line]


def test_a_batch_runs_to_completion_with_one_output_line_per_custom_id(sdk: OpenAI) -> None:
    batch = wait(sdk, submit(sdk, lines(30)))
    assert batch.status == "completed", batch.errors
    assert batch.request_counts is not None
    assert (batch.request_counts.total, batch.request_counts.completed, batch.request_counts.failed) == (30, 30, 0)
    assert batch.error_file_id is None and batch.metadata == {"run": "test"}
    assert batch.in_progress_at and batch.finalizing_at and batch.completed_at
    assert batch.created_at <= batch.in_progress_at <= batch.completed_at
    rows = output(sdk, batch.output_file_id)
    assert sorted(r["custom_id"] for r in rows) == sorted(f"req-{i}" for i in range(30))
    first = next(r for r in rows if r["custom_id"] == "req-3")
    assert first["response"]["status_code"] == 200 and first["error"] is None
    body = first["response"]["body"]
    assert body["object"] == "chat.completion" and body["choices"][0]["message"]["content"] == "user: "
    assert body["usage"]["completion_tokens"] == 6
    assert batch.usage is not None and batch.usage.output_tokens == 30 * 6


def test_an_invalid_input_file_fails_the_batch_with_its_errors(sdk: OpenAI) -> None:
    good = json.loads(lines(1).decode())
    bad_url = good | {"url": "/v1/embeddings", "custom_id": "b"}
    bad_body = good | {"custom_id": "c", "body": {"model": "echo", "messages": [], "max_tokens": 6}}
    data = "\n".join([json.dumps(good), "{not json", json.dumps(bad_url), json.dumps(bad_body), json.dumps(good)])
    batch = wait(sdk, submit(sdk, data.encode()))
    assert batch.status == "failed" and batch.failed_at is not None and batch.output_file_id is None
    assert batch.errors is not None and batch.errors.data is not None
    found = {(e.line, e.code) for e in batch.errors.data}
    assert {(2, "invalid_json_line"), (3, "invalid_url"), (5, "duplicate_custom_id")} <= found
    assert any(e.line == 4 and e.param == "body.messages" for e in batch.errors.data)


def test_a_cancelled_batch_stops_and_keeps_what_was_answered(sdk: OpenAI) -> None:
    batch_id = submit(sdk, lines(400, model="tinylm"))
    wait(sdk, batch_id, lambda b: b.request_counts is not None and b.request_counts.completed >= 8)
    cancelling = sdk.batches.cancel(batch_id)
    assert cancelling.status in ("cancelling", "cancelled")
    batch = wait(sdk, batch_id)
    assert batch.status == "cancelled" and batch.cancelling_at and batch.cancelled_at
    assert batch.request_counts is not None
    assert 8 <= batch.request_counts.completed < 400
    rows = output(sdk, batch.output_file_id)
    assert len(rows) == batch.request_counts.completed == len({r["custom_id"] for r in rows})


def test_each_line_has_one_output_line_across_gateway_and_router_restarts(
    host: Host, kafka_bootstrap: str, database_url: Any, gateway_database: str, gateway_triton: str
) -> None:
    with stack_of(host, kafka_bootstrap, database_url, gateway_database, gateway_triton) as running:
        first = OpenAI(base_url=running.start_gateway("a"), api_key=running.key(), max_retries=0, timeout=30)
        batch_id = submit(first, lines(120))
        wait(first, batch_id, lambda b: b.request_counts is not None and b.request_counts.completed >= 20)
        running.stop("a")  # mid-batch: lines in flight, their results on the batch topic with no reader
        running.stop("router")
        running.start_router(fresh=False)  # from its committed offsets
        with _database(running) as sql:
            # A crash between writing lines as sent and producing them: they must be sent again.
            lost = sql(
                """UPDATE batch_line SET state='sent', attempts=1, due_at=now() - interval '1 second'
                          WHERE batch_id=:b AND state='pending' AND line_no IN
                          (SELECT line_no FROM batch_line WHERE batch_id=:b AND state='pending' LIMIT 5)""",
                batch_id,
            )
        host.call(_send_again(kafka_bootstrap, running.requests_topic, running.batch_topic, batch_id))
        second = OpenAI(base_url=running.start_gateway("b"), api_key=first.api_key, max_retries=0, timeout=30)
        batch = wait(second, batch_id, timeout=40)
        rows = output(second, batch.output_file_id)
    assert lost == 5
    assert batch.status == "completed"
    assert batch.request_counts is not None
    assert (batch.request_counts.completed, batch.request_counts.failed) == (120, 0)
    ids = [r["custom_id"] for r in rows]
    assert len(ids) == 120 and set(ids) == {f"req-{i}" for i in range(120)}
    # The repeats the router answered for lines 1 and 2 came after their first results: dropped.
    repeated = [r for r in rows if r["custom_id"] in ("req-1", "req-2")]
    assert [r["response"]["body"]["choices"][0]["message"]["content"] for r in repeated] == ["user: ", "user: "]


async def _send_again(kafka: str, topic: str, reply_topic: str, batch_id: str) -> None:
    """Line 1 and 2 sent a second time with their own request ids: the router answers them twice."""
    producer = AIOKafkaProducer(bootstrap_servers=kafka)
    await producer.start()
    try:
        for line_no in (1, 2):
            request = InferenceRequested(
                source="test",
                request_id=line_request_id(batch_id, line_no),
                model_id="echo",
                prompt="a repeat",
                max_tokens=4,
                reply_topic=reply_topic,
            )
            await producer.send_and_wait(topic, request.model_dump_json().encode())
    finally:
        await producer.stop()


@contextlib.contextmanager
def _database(stack: Stack) -> Iterator[Any]:
    """Run one statement as the gateway's role; the rows it touched."""
    engine = create_async_engine(stack.database)

    async def run(statement: str, batch_id: str) -> int:
        async with engine.begin() as connection:
            result = await connection.execute(text(statement), {"b": batch_id})
            return int(result.rowcount)

    try:
        yield lambda statement, batch_id: stack.host.call(run(statement, batch_id))
    finally:
        stack.host.call(engine.dispose())


def test_an_unreadable_result_is_dead_lettered_and_batches_go_on(stack: Stack, sdk: OpenAI) -> None:
    async def garbage() -> list[dict[str, Any]]:
        async with Topic(stack.kafka, DEADLETTER.name) as letters:
            producer = AIOKafkaProducer(bootstrap_servers=stack.kafka)
            await producer.start()
            try:
                await producer.send_and_wait(stack.batch_topic, b"not a result")
            finally:
                await producer.stop()
            return await letters.until(lambda values: any(v.get("consumer") == stack.group for v in values))

    letters = [v for v in stack.host.call(garbage()) if v.get("consumer") == stack.group]
    assert letters and letters[0]["source_topic"] == stack.batch_topic
    assert letters[0]["reason"].startswith("unreadable result")
    assert wait(sdk, submit(sdk, lines(3))).status == "completed"
