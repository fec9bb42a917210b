"""A small client for services that send inference requests over Kafka and await the results.

async with FleetClient("127.0.0.1:9092") as fleet:
    result = await fleet.complete("tinylm", "Hello", max_tokens=16, timeout=30)
    print(result.status, result.text)

Each client reads only its own results. At start it creates a reply topic of its own,
`inference.replies.client-<source>-<random>` (the router answers any topic under the allowed
`inference.replies.` prefix), assigns its partitions without a consumer group, and deletes it on
close, as each gateway replica does (docs/gateway.md). A client that reads a shared results topic
would read every other client's results and throw them away: at 1,000 requests/s across ten
clients, nine tenths of its reads. Pass `reply_topic=` to read a topic made elsewhere (it is then
neither created nor deleted).

Only aiokafka's public API is used. The client needs aiokafka, pydantic and opentelemetry-api,
not the service stack: `pip install clients/python` (the `llmfleet-client` distribution, which
ships this module and the event schemas) installs just that.

On a secure broker pass `security=` an object with `client_options()` (`shared.kafka_security`'s
`kafka_security_from_env()`: LLMFLEET_KAFKA_SECURITY_PROTOCOL=SASL_SSL, _SASL_USERNAME,
_SASL_PASSWORD, _SSL_CAFILE): the `client` principal may write requests and create, read and
delete topics under `inference.replies.client-`.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, UnknownTopicOrPartitionError
from opentelemetry import propagate
from pydantic import ValidationError

from shared.events import INFERENCE_REQUESTS, InferenceCompleted, InferenceRequested
from shared.events.ownership import CLIENT_REPLY_PREFIX


class Security(Protocol):
    """Kafka credentials: the keyword arguments aiokafka's clients take (`shared.kafka_security.KafkaSecurity`)."""

    def client_options(self) -> dict[str, Any]:
        """security_protocol, sasl_*, ssl_context; empty for PLAINTEXT."""


def reply_topic_for(source: str) -> str:
    """A fresh reply topic name for a client called `source` (Kafka's allowed characters, under 249)."""
    tag = re.sub(r"[^A-Za-z0-9._-]", "-", source)[:100]
    return f"{CLIENT_REPLY_PREFIX}{tag}-{uuid.uuid4().hex[:12]}"


class FleetClient:
    """Produces `InferenceRequested` events and matches `InferenceCompleted` results by request id."""

    def __init__(
        self,
        bootstrap: str,
        reply_topic: str | None = None,
        source: str = "client",
        on_result: Callable[[InferenceCompleted], None] | None = None,
        security: Security | None = None,
        reply_partitions: int = 2,
        requests_topic: str = INFERENCE_REQUESTS.name,
    ) -> None:
        """`on_result`, when given, sees every result read (also of requests sent untracked)."""
        self._bootstrap = bootstrap
        self._on_result = on_result
        self._owns_topic = reply_topic is None
        self.reply_topic = reply_topic or reply_topic_for(source)
        self._partitions = reply_partitions
        self._source = source
        self._requests_topic = requests_topic
        self._options = security.client_options() if security is not None else {}
        self._producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2, **self._options)
        self._consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **self._options)
        self._waiting: dict[str, asyncio.Future[InferenceCompleted]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> FleetClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object | type[BaseException] | TracebackType | None) -> None:
        await self.close()

    async def start(self) -> None:
        """Create the reply topic (if ours), connect, and read it from its end so no later result is missed."""
        if self._owns_topic:
            await self._admin(self._create)
        await self._producer.start()
        await self._consumer.start()
        partitions = await self._reply_partitions()
        self._consumer.assign(partitions)
        await self._consumer.seek_to_end(*partitions)
        for tp in partitions:
            await self._consumer.position(tp)  # resolves the end offsets now, before any send
        self._reader = asyncio.create_task(self._read_results(), name=f"results of {self.reply_topic}")
        self._reader.add_done_callback(self._reader_ended)

    async def close(self) -> None:
        """Stop reading, flush pending sends, and delete the reply topic if this client made it."""
        if self._reader:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        await self._producer.stop()
        await self._consumer.stop()
        if self._owns_topic:
            await self._admin(self._delete)

    async def send(self, model_id: str, prompt: str, request_id: str | None = None, **fields: Any) -> str:
        """Send one request (fields as in `InferenceRequested`); return its request id."""
        fields.setdefault("reply_topic", self.reply_topic)
        request = InferenceRequested(
            source=self._source,
            request_id=request_id or str(uuid.uuid4()),
            model_id=model_id,
            prompt=prompt,
            **fields,
        )
        return await self.send_request(request)

    async def send_request(self, request: InferenceRequested, track: bool = True) -> str:
        """Send a prepared request (answered on this client's reply topic unless it names one).

        `track=False`: nothing is kept for `result` (a stream of many requests whose results the
        caller takes from `on_result`).
        """
        if request.reply_topic is None:
            request = request.model_copy(update={"reply_topic": self.reply_topic})
        if track:
            self._waiting.setdefault(request.request_id, asyncio.get_running_loop().create_future())
        carrier = {"content-type": "application/json"}
        propagate.inject(carrier)  # the caller's trace continues in the router
        await self._producer.send(
            self._requests_topic,
            request.model_dump_json().encode(),
            key=request.request_id.encode(),
            headers=[(k, v.encode()) for k, v in carrier.items()],
        )
        return request.request_id

    async def result(self, request_id: str, timeout: float = 60.0) -> InferenceCompleted:
        """Await the result of a request sent by this client; raises TimeoutError after `timeout`."""
        future = self._waiting.setdefault(request_id, asyncio.get_running_loop().create_future())
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        finally:
            if future.done():
                self._waiting.pop(request_id, None)

    async def complete(self, model_id: str, prompt: str, timeout: float = 60.0, **fields: Any) -> InferenceCompleted:
        """Send one request and await its result."""
        return await self.result(await self.send(model_id, prompt, **fields), timeout)

    async def collect(self, request_ids: Iterable[str], timeout: float = 60.0) -> dict[str, InferenceCompleted]:
        """Await many results; those not back within `timeout` are missing from the answer."""
        ids = list(request_ids)
        done = await asyncio.gather(*(self.result(i, timeout) for i in ids), return_exceptions=True)
        return {i: r for i, r in zip(ids, done, strict=True) if isinstance(r, InferenceCompleted)}

    async def _admin(self, work: Callable[[AIOKafkaAdminClient], Any]) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap, **self._options)
        await admin.start()
        try:
            await work(admin)
        finally:
            await admin.close()

    async def _create(self, admin: AIOKafkaAdminClient) -> None:
        with contextlib.suppress(TopicAlreadyExistsError):  # a uuid in the name: only a retried start gets here
            await admin.create_topics([NewTopic(self.reply_topic, self._partitions, 1)])

    async def _delete(self, admin: AIOKafkaAdminClient) -> None:
        with contextlib.suppress(UnknownTopicOrPartitionError):  # deleted already (an operator, a retried close)
            await admin.delete_topics([self.reply_topic])

    async def _reply_partitions(self) -> list[TopicPartition]:
        """The reply topic's partitions, waiting (bounded) for a just-created topic's metadata."""
        for _ in range(100):
            described = await self._describe()
            if described:
                return [TopicPartition(self.reply_topic, p) for p in sorted(described)]
            await asyncio.sleep(0.1)
        raise RuntimeError(f"reply topic {self.reply_topic} has no partitions")

    async def _describe(self) -> set[int]:
        admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap, **self._options)
        await admin.start()
        try:
            [topic] = await admin.describe_topics([self.reply_topic])
        finally:
            await admin.close()
        return {p["partition"] for p in topic.get("partitions", ()) if p.get("leader", -1) >= 0}

    def _reader_ended(self, task: asyncio.Task[None]) -> None:
        """A reader that dies must not leave callers waiting for their timeouts: fail them now."""
        error = None if task.cancelled() else task.exception()
        if error is None:
            return
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(ConnectionError(f"the results reader stopped: {error!r}"))

    async def _read_results(self) -> None:
        async for record in self._consumer:
            try:
                result = InferenceCompleted.model_validate_json(record.value or b"")
            except ValidationError:
                continue  # not a result (a streamed chunk, or a stranger's record): not ours to judge
            if self._on_result is not None:
                self._on_result(result)
            future = self._waiting.get(result.request_id)
            if future and not future.done():
                future.set_result(result)
