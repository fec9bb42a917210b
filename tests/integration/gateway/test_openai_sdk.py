"""The gateway as OpenAI's own SDK sees it: completions, chat, models, and the errors it raises."""

from __future__ import annotations

import openai
import pytest
from openai import AsyncOpenAI, OpenAI

from services.gateway.domain.limits import Limits
from tests.integration.gateway.conftest import Keys, Replica

pytestmark = pytest.mark.integration


def client(replica: Replica, key: str) -> OpenAI:
    return OpenAI(base_url=replica.base_url, api_key=key, max_retries=0, timeout=30)


def test_a_completion_through_the_sync_client(replicas: list[Replica], keys: Keys) -> None:
    answer = client(replicas[0], keys.new()).completions.create(model="echo", prompt="hello", max_tokens=8)
    assert answer.choices[0].text == "hellohel"
    assert answer.choices[0].finish_reason == "length"
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens, answer.usage.total_tokens) == (5, 8, 13)
    assert answer.model == "echo" and answer.object == "text_completion"


def test_stop_sequences_cut_the_text(replicas: list[Replica], keys: Keys) -> None:
    answer = client(replicas[0], keys.new()).completions.create(model="echo", prompt="ab;cd", max_tokens=10, stop=";")
    assert answer.choices[0].text == "ab"
    assert answer.choices[0].finish_reason == "stop"


async def test_a_chat_completion_through_the_async_client(replicas: list[Replica], keys: Keys) -> None:
    async with AsyncOpenAI(base_url=replicas[1].base_url, api_key=keys.new(), max_retries=0, timeout=30) as chat:
        answer = await chat.chat.completions.create(
            model="tinylm",
            messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}],
            max_tokens=6,
            temperature=0.7,
            user="someone",
        )
    assert answer.object == "chat.completion"
    assert answer.choices[0].message.role == "assistant"
    assert isinstance(answer.choices[0].message.content, str)
    assert answer.usage is not None and answer.usage.completion_tokens == 6
    prompt = "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n"
    assert answer.usage.prompt_tokens == len(prompt.encode())  # the chatml template was applied


async def test_the_async_client_echoes_the_chat_template(replicas: list[Replica], keys: Keys) -> None:
    async with AsyncOpenAI(base_url=replicas[0].base_url, api_key=keys.new(), max_retries=0) as chat:
        answer = await chat.chat.completions.create(
            model="echo", messages=[{"role": "user", "content": "hi"}], max_tokens=11
        )
    assert answer.choices[0].message.content == "user: hi\nas"  # the plain template, cycled by echo


def test_models_lists_the_servable_models(replicas: list[Replica], keys: Keys) -> None:
    listed = client(replicas[0], keys.new()).models.list()
    by_id = {m.id: m for m in listed.data}
    assert {"echo", "tinylm"} <= set(by_id)
    assert by_id["tinylm"].model_extra is not None and by_id["tinylm"].model_extra["tier"] == "hot"


def test_a_bad_key_is_an_authentication_error(replicas: list[Replica]) -> None:
    with pytest.raises(openai.AuthenticationError) as raised:
        client(replicas[0], "sk-llmf-not-a-key").completions.create(model="echo", prompt="x", max_tokens=1)
    assert raised.value.code == "invalid_api_key"


def test_a_revoked_key_is_refused(replicas: list[Replica], keys: Keys) -> None:
    key = keys.new()
    client(replicas[0], key).completions.create(model="echo", prompt="x", max_tokens=1)
    keys.revoke(key)
    with pytest.raises(openai.AuthenticationError) as raised:
        client(replicas[1], key).completions.create(model="echo", prompt="x", max_tokens=1)
    assert raised.value.code == "api_key_revoked"


def test_an_unknown_model_is_not_found(replicas: list[Replica], keys: Keys) -> None:
    with pytest.raises(openai.NotFoundError) as raised:
        client(replicas[0], keys.new()).completions.create(model="no-such-model", prompt="x", max_tokens=1)
    assert raised.value.code == "model_not_found"


def test_a_model_outside_the_keys_scopes_is_forbidden(replicas: list[Replica], keys: Keys) -> None:
    key = keys.new(scopes=("echo",))
    with pytest.raises(openai.PermissionDeniedError):
        client(replicas[0], key).completions.create(model="tinylm", prompt="x", max_tokens=1)


def test_a_request_over_the_models_limit_is_a_bad_request(replicas: list[Replica], keys: Keys) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client(replicas[0], keys.new()).completions.create(model="tinylm", prompt="x", max_tokens=600)
    assert raised.value.code == "context_length_exceeded"  # the router's rejection, mapped


@pytest.mark.usefixtures("same_minute")
def test_over_quota_is_a_rate_limit_error_with_retry_after(replicas: list[Replica], keys: Keys) -> None:
    openai_client = client(replicas[0], keys.new(key_limits=Limits(rpm=2)))
    for _ in range(2):
        openai_client.completions.create(model="echo", prompt="x", max_tokens=1)
    with pytest.raises(openai.RateLimitError) as raised:
        openai_client.completions.create(model="echo", prompt="x", max_tokens=1)
    assert 1 <= int(raised.value.response.headers["retry-after"]) <= 60
    assert "requests per minute" in str(raised.value)
