"""Fakes of the hot path's Kafka clients and Triton dispatcher, and a router hot path wired over them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import TopicPartition
from aiokafka.structs import OffsetAndMetadata
from opentelemetry.sdk.trace import TracerProvider

from services.router.adapters.delivery import Delivery
from services.router.adapters.metrics import LabelBudget, RouterMetrics, router_metrics
from services.router.adapters.triton_client import BatchResult, Completion
from services.router.domain.batching import Batch
from services.router.domain.demand import DemandWindow
from services.router.domain.registry import Registry, Server
from services.router.hotpath.accounting import Accounting
from services.router.hotpath.dispatch import NotServed, Served
from services.router.hotpath.gate import Gate
from services.router.hotpath.intake import Intake
from services.router.hotpath.offsets import Offsets
from services.router.hotpath.pipeline import RouterCore
from services.router.hotpath.results import ResultPublisher
from services.router.settings import RouterSettings
from shared.events import INFERENCE_REQUESTS, INFERENCE_RESULTS, InferenceRequested
from shared.metrics import new_registry

TOPIC = INFERENCE_REQUESTS.name


@dataclass
class Record:
    """What the hot path reads of an aiokafka ConsumerRecord."""

    topic: str
    partition: int
    offset: int
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()
    timestamp: int = 0


def record(offset: int, request_id: str = "", model: str = "m", partition: int = 0, **fields: Any) -> Record:
    """A request record at `offset` (request id `r<offset>` unless given)."""
    event = InferenceRequested(
        source="test", request_id=request_id or f"r{offset}", model_id=model, prompt=f"hi {offset}", **fields
    )
    return Record(TOPIC, partition, offset, event.model_dump_json().encode())


@dataclass
class Sent:
    """One record the fake producer took."""

    topic: str
    value: dict[str, Any]
    key: bytes | None


class FakeProducer:
    """The AIOKafkaProducer calls `Delivery` and `ReplyTopics` make; each send is acknowledged at once.

    `failures` is how many sends fail (at their acknowledgement) before they succeed again.
    """

    def __init__(self, topics: set[str] | None = None, failures: int = 0, error: BaseException | None = None) -> None:
        self.topics = topics if topics is not None else {INFERENCE_RESULTS.name}
        self.failures = failures
        self.error = error or ConnectionError("broker down (test)")
        self.sent: list[Sent] = []
        self.started = False

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.started = False

    async def flush(self) -> None:
        await asyncio.sleep(0)

    async def send(
        self, topic: str, value: bytes, key: bytes | None = None, headers: Any = None
    ) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.failures > 0:
            self.failures -= 1
            future.set_exception(self.error)
        else:
            self.sent.append(Sent(topic, json.loads(value), key))
            future.set_result(None)
        return future

    async def partitions_for(self, topic: str) -> set[int]:
        return {0} if topic in self.topics else set()

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        """The sent events (of one `type`, if given)."""
        return [s.value for s in self.sent if kind is None or s.value.get("type") == kind]

    def results(self) -> list[dict[str, Any]]:
        """The sent results."""
        return self.events("inference_completed")


class FakeCoordinator:
    def __init__(self, committed: dict[TopicPartition, OffsetAndMetadata]) -> None:
        self.committed = committed

    async def fetch_committed_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, Any]:
        return {tp: self.committed[tp] for tp in partitions if tp in self.committed}


class FakeConsumer:
    """The AIOKafkaConsumer calls `Offsets` makes: commits kept (or refused), committed offsets read back."""

    def __init__(self, fail: BaseException | None = None) -> None:
        self.fail = fail
        self.committed: dict[TopicPartition, OffsetAndMetadata] = {}
        self._coordinator = FakeCoordinator(self.committed)

    async def commit(self, offsets: dict[TopicPartition, tuple[int, str]]) -> None:
        if self.fail is not None:
            raise self.fail
        self.committed.update({tp: OffsetAndMetadata(*point) for tp, point in offsets.items()})


@dataclass
class FakeDispatcher:
    """Serves batches from a script of outcomes (then echoes the prompts); `served` records each batch."""

    registry: Registry = field(default_factory=Registry)
    script: list[Served | NotServed] = field(default_factory=list)
    served: list[Batch] = field(default_factory=list)

    async def serve(self, batch: Batch) -> Served | NotServed:
        self.served.append(batch)
        if self.script:
            return self.script.pop(0)
        return Served("s1", BatchResult([Completion(r.prompt.upper(), 1, 2) for r in batch.requests], 1.0))


def with_model(registry: Registry, model: str = "m", server_id: str = "s1") -> Registry:
    """The registry with a healthy server that has the model."""
    registry.add_server(Server(server_id, f"{server_id}:8000", "us-east-1", "a100", 3.0, capacity=4))
    registry.load_model(server_id, model, model)
    return registry


@dataclass
class Rig:
    """A hot path wired as `create_app` wires it, over a fake producer and dispatcher (no loop, no consumer)."""

    settings: RouterSettings
    producer: FakeProducer
    dispatcher: FakeDispatcher
    metrics: RouterMetrics
    offsets: Offsets
    demand: DemandWindow
    delivery: Delivery
    results: ResultPublisher
    core: RouterCore
    gate: Gate
    intake: Intake
    failures: list[BaseException]

    async def settle(self) -> None:
        """Close open batches, wait for every task, let the acknowledgements arrive."""
        await self.core.drain(5.0)
        for _ in range(3):
            await asyncio.sleep(0)


async def rig(
    producer: FakeProducer | None = None,
    dispatcher: FakeDispatcher | None = None,
    make: Callable[[], RouterSettings] | None = None,
    **overrides: Any,
) -> Rig:
    """A started hot path (its delivery connected) with settings `overrides`."""
    settings = make() if make is not None else RouterSettings(**({"cold_start_models": []} | overrides))
    producer = producer or FakeProducer()
    dispatcher = dispatcher or FakeDispatcher(with_model(Registry()))
    failures: list[BaseException] = []
    tracer = TracerProvider().get_tracer("test")
    metrics = router_metrics(new_registry())
    offsets, demand, gate = Offsets(metrics), DemandWindow(), Gate(settings)
    accounting = Accounting(metrics, demand, LabelBudget(settings.max_metric_models))
    delivery = Delivery(offsets, lambda: producer, failures.append, max_backoff_s=0.01)
    await delivery.start()
    results = ResultPublisher(delivery, accounting, tracer, "router")
    core = RouterCore(settings, dispatcher, results, accounting, failures.append)  # type: ignore[arg-type]
    intake = Intake(settings, gate, offsets, results, core, tracer)
    return Rig(
        settings, producer, dispatcher, metrics, offsets, demand, delivery, results, core, gate, intake, failures
    )


def sample(metrics: RouterMetrics, name: str, **labels: str) -> float:
    """The value of one metric sample (0 when absent)."""
    for metric in (metrics.requests, metrics.repeats_skipped, metrics.batch_size):
        for family in metric.collect():
            for s in family.samples:
                if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                    return float(s.value)
    return 0.0
