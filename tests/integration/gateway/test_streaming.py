"""Token streaming through the gateway, as OpenAI's SDK sees it: chunks as they are generated, then usage."""

from __future__ import annotations

import time

import openai
import pytest
from openai import AsyncOpenAI, OpenAI

from services.gateway.domain.responses import cut_at_stop
from tests.integration.gateway.conftest import Keys, Replica

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
PROMPT = "Once upon a time"
LONG = 200  # tinylm tokens: long enough that the first ones reach the client well before the last is made


def client(replica: Replica, key: str) -> OpenAI:
    return OpenAI(base_url=replica.base_url, api_key=key, max_retries=0, timeout=60)


def test_a_streamed_completion_is_the_unstreamed_text_token_by_token_with_usage(
    replicas: list[Replica], keys: Keys
) -> None:
    sdk, gateway = client(replicas[0], keys.new()), replicas[0].app
    whole = sdk.completions.create(model="tinylm", prompt=PROMPT, max_tokens=LONG, temperature=0)
    stream = sdk.completions.create(
        model="tinylm",
        prompt=PROMPT,
        max_tokens=LONG,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks, waiting_at_first = [], None
    for chunk in stream:
        if not chunks:  # the first token is here: the gateway still waits for the request's one result
            waiting_at_first = gateway.bridge.waiting
        chunks.append(chunk)
    texts = [c.choices[0].text for c in chunks if c.choices and c.choices[0].text]
    assert waiting_at_first == 1  # real streaming: not a finished text cut into chunks
    assert len(texts) > LONG // 2  # a chunk per token, or nearly (the broker may batch a few)
    assert "".join(texts) == whole.choices[0].text and len(whole.choices[0].text) == LONG
    assert {c.object for c in chunks} == {"text_completion"} and len({c.id for c in chunks}) == 1
    finish, usage = chunks[-2], chunks[-1]
    assert finish.choices[0].finish_reason == "length"
    assert usage.choices == [] and usage.usage is not None
    assert (usage.usage.prompt_tokens, usage.usage.completion_tokens) == (len(PROMPT), LONG)
    assert all(c.usage is None for c in chunks[:-1])


async def test_a_streamed_chat_through_the_async_client(replicas: list[Replica], keys: Keys) -> None:
    messages = [{"role": "user", "content": "Tell me a story"}]
    async with AsyncOpenAI(base_url=replicas[1].base_url, api_key=keys.new(), max_retries=0, timeout=60) as chat:
        whole = await chat.chat.completions.create(model="tinylm", messages=messages, max_tokens=40, temperature=0)
        stream = await chat.chat.completions.create(
            model="tinylm",
            messages=messages,
            max_tokens=40,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
    assert chunks[0].object == "chat.completion.chunk" and chunks[0].choices[0].delta.role == "assistant"
    content = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content) > 1 and "".join(content) == whole.choices[0].message.content
    assert chunks[-2].choices[0].finish_reason == "length"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 40
    assert whole.usage is not None and chunks[-1].usage.prompt_tokens == whole.usage.prompt_tokens


def test_a_stream_ends_at_the_first_stop_sequence(replicas: list[Replica], keys: Keys) -> None:
    sdk = client(replicas[0], keys.new())
    whole = sdk.completions.create(model="tinylm", prompt=PROMPT, max_tokens=60, temperature=0).choices[0].text
    stop = whole[30:32]  # two characters of the text: it must end before their first appearance
    chunks = list(
        sdk.completions.create(model="tinylm", prompt=PROMPT, max_tokens=60, temperature=0, stop=stop, stream=True)
    )
    assert "".join(c.choices[0].text for c in chunks) == cut_at_stop(whole, (stop,))[0]
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_a_model_without_a_streaming_variant_streams_its_whole_text_at_the_end(
    replicas: list[Replica], keys: Keys
) -> None:
    chunks = list(
        client(replicas[0], keys.new()).completions.create(
            model="echo", prompt="ab;cd", max_tokens=10, stop=";", stream=True
        )
    )
    assert [c.choices[0].text for c in chunks] == ["ab", ""] and chunks[-1].choices[0].finish_reason == "stop"


def test_errors_before_the_first_chunk_are_http_errors(replicas: list[Replica], keys: Keys) -> None:
    with pytest.raises(openai.AuthenticationError):
        client(replicas[0], "sk-llmf-wrong").completions.create(model="tinylm", prompt="x", max_tokens=2, stream=True)
    with pytest.raises(openai.NotFoundError):
        client(replicas[0], keys.new()).completions.create(model="nope", prompt="x", max_tokens=2, stream=True)
    with pytest.raises(openai.BadRequestError) as raised:
        client(replicas[0], keys.new()).completions.create(
            model="tinylm", prompt="x", max_tokens=2, stream_options={"include_usage": True}
        )
    assert raised.value.code == "invalid_request_error" or raised.value.param == "stream_options"


def test_a_client_that_goes_away_mid_stream_stops_the_call_before_its_result(
    replicas: list[Replica], keys: Keys
) -> None:
    gateway = replicas[0].app
    stream = client(replicas[0], keys.new()).completions.create(
        model="tinylm", prompt=PROMPT, max_tokens=500, temperature=0, stream=True
    )
    first = next(iter(stream))
    request_id = first.id.removeprefix("cmpl-")
    assert request_id in gateway.bridge._listening
    stream.close()  # the client disconnects
    deadline = time.monotonic() + 10
    while request_id in gateway.bridge._listening and time.monotonic() < deadline:
        time.sleep(0.01)
    # The stream was torn down by the disconnect while the fleet was still generating: not by the result.
    assert request_id not in gateway.bridge._listening and gateway.bridge.waiting == 1
