"""Streamed requests on fakes: tokens forwarded in order, the unstreamed fallback, no retry once a token went out."""

from __future__ import annotations

from dataclasses import replace

from tritonclient.utils import InferenceServerException

from services.router.adapters.triton_client import BatchResult, Completion, VariantMissing
from services.router.domain.batching import Batch
from services.router.hotpath.dispatch import NotServed, Served
from services.router.hotpath.streaming import Streamer
from tests.unit.router.test_dispatch import FakeTriton, batch, setup


class StreamingTriton(FakeTriton):
    """A TritonClient whose `stream` sends `tokens`, then fails when told to, or lacks the variant."""

    def __init__(self, tokens: str = "abc", fail_after: int | None = None, variant: bool = True) -> None:
        super().__init__()
        self.tokens, self.fail_after, self.variant = tokens, fail_after, variant
        self.stream_error: Exception = ConnectionError("the server went away")

    async def stream(self, model, prompt, on_token):
        self.calls.append(model)
        if not self.variant:
            raise VariantMissing(f"Request for unknown model: '{model}' is not found")
        for index, token in enumerate(self.tokens):
            if index == self.fail_after:
                raise self.stream_error
            await on_token(index, token, index + 1)
        return BatchResult([Completion(self.tokens, len(self.tokens), len(prompt.text))], 2.0, 0.5)


def streamed() -> Batch:
    one = batch(1)
    return Batch(one.key, (replace(one.requests[0], stream=True),), "stream", 0.0)


def streaming_setup(servers: dict[str, StreamingTriton]):
    dispatcher, _registry, _fakes = setup(dict.fromkeys(servers))
    dispatcher.fakes = servers
    forwarded: list[tuple[str, int, str, int]] = []

    async def forward(request, index, text, tokens):
        forwarded.append((request.request_id, index, text, tokens))

    dispatcher.streamer = Streamer("_stream", forward)
    return dispatcher, forwarded


async def test_each_token_is_forwarded_in_order_and_the_result_holds_the_whole_text():
    dispatcher, forwarded = streaming_setup({"near": StreamingTriton("xyz")})
    outcome = await dispatcher.serve(streamed())
    assert isinstance(outcome, Served) and outcome.result.completions[0].text == "xyz"
    assert outcome.result.first_token_ms == 0.5
    assert forwarded == [("r0", 0, "x", 1), ("r0", 1, "y", 2), ("r0", 2, "z", 3)]
    assert dispatcher.fakes["near"].calls == ["triton-m_stream"]  # the variant of the model's Triton name


async def test_a_server_without_the_variant_serves_the_request_unstreamed():
    dispatcher, forwarded = streaming_setup({"near": StreamingTriton(variant=False)})
    outcome = await dispatcher.serve(streamed())
    assert isinstance(outcome, Served) and forwarded == []
    assert dispatcher.fakes["near"].calls == ["triton-m_stream", "triton-m"]
    assert dispatcher.registry.servers["near"].healthy  # not a server fault


async def test_a_stream_that_breaks_after_a_token_is_not_tried_elsewhere():
    dispatcher, forwarded = streaming_setup(
        {"near": StreamingTriton(fail_after=1), "far": StreamingTriton(), "mid": StreamingTriton()}
    )
    outcome = await dispatcher.serve(streamed())
    assert isinstance(outcome, NotServed) and "StreamBroken: stream broke after 1 tokens" in outcome.reason
    assert forwarded == [("r0", 0, "a", 1)]  # no server repeats the token the client already has
    assert [name for fake in dispatcher.fakes.values() for name in fake.calls] == ["triton-m_stream"]


async def test_a_stream_that_fails_before_its_first_token_is_tried_on_the_next_server():
    dispatcher, forwarded = streaming_setup({"near": StreamingTriton(fail_after=0), "far": StreamingTriton("ok")})
    outcome = await dispatcher.serve(streamed())
    assert isinstance(outcome, Served) and outcome.server_id == "far"
    assert [t for _, _, t, _ in forwarded] == ["o", "k"]


async def test_an_unstreamed_batch_never_takes_the_streaming_path():
    dispatcher, forwarded = streaming_setup({"near": StreamingTriton()})
    outcome = await dispatcher.serve(batch(2))
    assert isinstance(outcome, Served) and forwarded == [] and dispatcher.fakes["near"].calls == ["triton-m"]


async def test_a_model_error_that_breaks_a_stream_leaves_the_server_in_service():
    dispatcher, _ = streaming_setup({"near": StreamingTriton(fail_after=1)})
    dispatcher.fakes["near"].stream_error = InferenceServerException("tinylm: boom")
    await dispatcher.serve(streamed())
    assert dispatcher.registry.servers["near"].healthy  # the model failed, not the server


async def test_a_transport_failure_that_breaks_a_stream_takes_the_server_out():
    dispatcher, _ = streaming_setup({"near": StreamingTriton(fail_after=1)})
    await dispatcher.serve(streamed())
    assert not dispatcher.registry.servers["near"].healthy
