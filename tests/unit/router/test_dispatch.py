"""Dispatch: best server first, bounded retries elsewhere, transport failures take a server out."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import INVALID_SPAN
from tritonclient.utils import InferenceServerException

from services.router.adapters.metrics import router_metrics
from services.router.adapters.triton_client import BatchResult, Completion
from services.router.domain.batching import Batch, group_key
from services.router.domain.registry import Registry, Server
from services.router.domain.requests import Pending
from services.router.hotpath.dispatch import Dispatcher, NotServed, Served
from services.router.hotpath.records import Ticket
from services.router.settings import RouterSettings
from shared.events import RoutingStrategy
from shared.metrics import new_registry


class FakeTriton:
    """Implements the TritonClient calls the dispatcher makes."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.calls: list[str] = []
        self.probes = 0

    async def infer(self, model, prompts):
        self.calls.append(model)
        if self.error is not None:
            raise self.error
        return BatchResult([Completion(p.text[: p.max_tokens], p.max_tokens, len(p.text)) for p in prompts], 1.5)

    async def is_ready(self, model=None):
        self.probes += 1
        return self.error is None


class FakeDispatcher(Dispatcher):
    def __init__(self, registry, settings, fakes):
        super().__init__(registry, settings, TracerProvider().get_tracer("t"), router_metrics(new_registry()))
        self.fakes = fakes

    def client(self, endpoint):
        return self.fakes[endpoint]


def batch(rows: int = 2, region: str = "us-east-1") -> Batch:
    requests = tuple(
        Pending(
            f"r{i}",
            "m",
            "hello",
            3,
            0.0,
            i,
            region=region,
            strategy=RoutingStrategy.LATENCY_OPTIMIZED,
            ticket=Ticket(None, i, INVALID_SPAN, None, 0.0, 0.0, 0.0),
        )
        for i in range(rows)
    )
    return Batch(group_key(requests[0]), requests, "full", 0.0)


def setup(errors: dict[str, Exception | None], attempts: int = 3, health_interval_s: float = 0.0):
    registry = Registry()
    regions = {"near": "us-east-1", "mid": "us-west-2", "far": "ap-southeast-1"}
    for server_id in errors:
        registry.add_server(Server(server_id, server_id, regions[server_id], "a100", 2.0, capacity=2))
        registry.load_model(server_id, "m", "triton-m")
    fakes = {server_id: FakeTriton(error) for server_id, error in errors.items()}
    settings = RouterSettings(max_attempts=attempts, no_server_wait_s=0.0, health_interval_s=health_interval_s)
    return FakeDispatcher(registry, settings, fakes), registry, fakes


async def test_the_best_server_serves_under_its_triton_name_and_load_comes_back():
    dispatcher, registry, fakes = setup({"near": None, "far": None})
    outcome = await dispatcher.serve(batch())
    assert isinstance(outcome, Served) and outcome.server_id == "near"
    assert fakes["near"].calls == ["triton-m"] and fakes["far"].calls == []
    assert [c.text for c in outcome.result.completions] == ["hel", "hel"]
    assert registry.servers["near"].inflight == 0 and registry.servers["near"].ok == 1


async def test_a_dead_server_is_taken_out_and_the_batch_retried_on_the_next():
    dispatcher, registry, fakes = setup({"near": ConnectionRefusedError("down"), "far": None})
    outcome = await dispatcher.serve(batch())
    assert isinstance(outcome, Served) and outcome.server_id == "far"
    assert registry.servers["near"].healthy is False and registry.servers["near"].failed == 1
    await dispatcher.check_health()  # still refusing: stays out
    assert registry.servers["near"].healthy is False
    fakes["near"].error = None
    await dispatcher.check_health()
    assert registry.servers["near"].healthy is True  # ready again: back in


async def test_retries_are_bounded_and_the_failure_says_where_it_was_tried():
    errors = {"near": ConnectionError("a"), "mid": ConnectionError("b"), "far": ConnectionError("c")}
    dispatcher, _registry, fakes = setup(errors, attempts=2)
    outcome = await dispatcher.serve(batch())
    assert isinstance(outcome, NotServed)
    assert sum(len(f.calls) for f in fakes.values()) == 2
    assert "near" in outcome.reason and "mid" in outcome.reason and "far" not in outcome.reason


async def test_a_model_error_is_retried_elsewhere_but_keeps_the_server_in():
    dispatcher, registry, _fakes = setup({"near": InferenceServerException("bad input"), "far": None})
    outcome = await dispatcher.serve(batch())
    assert isinstance(outcome, Served) and outcome.server_id == "far"
    assert registry.servers["near"].healthy is True and registry.servers["near"].failed == 1


async def test_no_server_with_the_model_fails_at_once_with_the_reason():
    dispatcher, _registry, _fakes = setup({})
    outcome = await dispatcher.serve(batch())
    assert isinstance(outcome, NotServed) and "no healthy server" in outcome.reason


async def test_a_server_that_stays_down_is_probed_less_often():
    dispatcher, registry, fakes = setup({"near": ConnectionError("down")}, health_interval_s=60.0)
    await dispatcher.check_health()
    await dispatcher.check_health()
    assert fakes["near"].probes == 1 and registry.servers["near"].healthy is False
