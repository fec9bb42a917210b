"""A small client for services that send inference requests over Kafka and await the results.

async with FleetClient("127.0.0.1:9092") as fleet:
    result = await fleet.complete("tinylm", "Hello", max_tokens=16, timeout=30)
    print(result.status, result.text)

On a secure broker pass `security=kafka_security_from_env()` (LLMFLEET_KAFKA_SECURITY_PROTOCOL=SASL_SSL,
_SASL_USERNAME, _SASL_PASSWORD, _SSL_CAFILE): the `client` principal may write requests and read results.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pydantic import ValidationError

from shared.events import INFERENCE_REQUESTS, INFERENCE_RESULTS, InferenceCompleted, InferenceRequested
from shared.kafka_security import PLAINTEXT, KafkaSecurity
from shared.telemetry import inject_trace_headers


class FleetClient:
    """Produces `InferenceRequested` events and matches `InferenceCompleted` results by request id."""

    def __init__(
        self,
        bootstrap: str,
        results_topic: str = INFERENCE_RESULTS.name,
        source: str = "client",
        on_result: Callable[[InferenceCompleted], None] | None = None,
        security: KafkaSecurity = PLAINTEXT,
    ) -> None:
        """`on_result`, when given, sees every result read (also of requests sent untracked)."""
        self._bootstrap = bootstrap
        self._on_result = on_result
        self._results_topic = results_topic
        self._source = source
        options = security.client_options()
        self._producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2, **options)
        self._consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **options)
        self._waiting: dict[str, asyncio.Future[InferenceCompleted]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> FleetClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object | type[BaseException] | TracebackType | None) -> None:
        await self.close()

    async def start(self) -> None:
        """Connect, and position the results reader at the end so no later result is missed."""
        await self._producer.start()
        await self._consumer.start()
        partitions = self._consumer.partitions_for_topic(self._results_topic) or set()
        if not partitions:
            await self._consumer._client.force_metadata_update()  # topic created after start
            partitions = self._consumer.partitions_for_topic(self._results_topic) or set()
        assigned = [TopicPartition(self._results_topic, p) for p in sorted(partitions)]
        self._consumer.assign(assigned)
        await self._consumer.seek_to_end(*assigned)
        for tp in assigned:
            await self._consumer.position(tp)  # resolves the end offsets now, before any send
        self._reader = asyncio.create_task(self._read_results())

    async def close(self) -> None:
        """Stop reading and flush pending sends."""
        if self._reader:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        await self._producer.stop()
        await self._consumer.stop()

    async def send(self, model_id: str, prompt: str, request_id: str | None = None, **fields: Any) -> str:
        """Send one request (fields as in `InferenceRequested`); return its request id."""
        request = InferenceRequested(
            source=self._source,
            request_id=request_id or str(uuid.uuid4()),
            model_id=model_id,
            prompt=prompt,
            **fields,
        )
        return await self.send_request(request)

    async def send_request(self, request: InferenceRequested, track: bool = True) -> str:
        """Send a prepared request; its result can then be awaited with `result`.

        `track=False`: nothing is kept for `result` (a stream of many requests whose results the
        caller takes from `on_result`).
        """
        if track:
            self._waiting.setdefault(request.request_id, asyncio.get_running_loop().create_future())
        headers = [(k, v.encode()) for k, v in inject_trace_headers({"content-type": "application/json"}).items()]
        await self._producer.send(
            INFERENCE_REQUESTS.name,
            request.model_dump_json().encode(),
            key=request.request_id.encode(),
            headers=headers,
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

    async def _read_results(self) -> None:
        async for record in self._consumer:
            try:
                result = InferenceCompleted.model_validate_json(record.value or b"")
            except ValidationError:
                continue  # not ours to judge: the platform dead-letters what it cannot read
            if self._on_result is not None:
                self._on_result(result)
            future = self._waiting.get(result.request_id)
            if future and not future.done():
                future.set_result(result)
