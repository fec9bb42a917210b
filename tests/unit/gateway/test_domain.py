"""The gateway's pure parts: chat templates, request parsing, responses, errors, keys, the catalogue."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.gateway.domain import errors
from services.gateway.domain.catalogue import Catalogue, ModelSpec
from services.gateway.domain.chat import ChatTemplate, Message, content_text, render
from services.gateway.domain.keys import ApiKey, Tenant, check_key, check_scope, display_prefix, hash_key, make_key
from services.gateway.domain.limits import Limits
from services.gateway.domain.requests import parse_chat, parse_completion
from services.gateway.domain.responses import Answer, body, cut_at_stop

NOW = datetime(2026, 12, 3, 10, 0, 30, tzinfo=UTC)
CONVERSATION = [
    Message("system", "Be brief."),
    Message("user", "Hi"),
    Message("assistant", "Hello"),
    Message("user", "Bye"),
]


def test_chatml_writes_each_turn_and_opens_the_assistants() -> None:
    prompt = render(CONVERSATION[:2], ChatTemplate.CHATML)
    assert prompt == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"


def test_llama2_folds_the_system_prompt_into_the_first_user_turn() -> None:
    prompt = render(CONVERSATION, ChatTemplate.LLAMA2)
    assert prompt == "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello </s><s>[INST] Bye [/INST]"


def test_plain_ends_where_the_assistant_answers() -> None:
    assert render([Message("user", "hi")], ChatTemplate.PLAIN) == "user: hi\nassistant:"


def test_content_parts_keep_their_text() -> None:
    assert content_text([{"type": "text", "text": "a"}, {"type": "image_url"}, {"type": "text", "text": "b"}]) == "ab"
    assert content_text(None) == ""


def test_a_completion_body_becomes_one_ask() -> None:
    ask = parse_completion({"model": "echo", "prompt": ["hi"], "stop": "x", "user": "u", "temperature": 0}, 16)
    assert (ask.model, ask.prompt, ask.max_tokens, ask.stop, ask.user, ask.chat) == (
        "echo",
        "hi",
        16,
        ("x",),
        "u",
        False,
    )


def test_chat_takes_max_completion_tokens_first() -> None:
    payload = {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 5,
        "max_completion_tokens": 7,
    }
    ask = parse_chat(payload, ChatTemplate.PLAIN, 16)
    assert ask.max_tokens == 7 and ask.prompt == "user: hi\nassistant:" and ask.chat


@pytest.mark.parametrize(
    ("payload", "status", "param"),
    [
        ({"model": "m", "prompt": "x", "stream_options": {"include_usage": True}}, 400, "stream_options"),
        ({"model": "m", "prompt": "x", "n": 2}, 400, "n"),
        ({"model": "m", "prompt": ["a", "b"]}, 400, "prompt"),
        ({"model": "m", "prompt": "x", "stop": ["a", "b", "c", "d", "e"]}, 400, "stop"),
        ({"model": "m", "prompt": "x", "echo": True}, 400, "echo"),
        ({"model": "m", "prompt": "x", "max_tokens": "many"}, 422, "max_tokens"),
        ({"model": "m", "prompt": "x", "temperature": 3}, 422, "temperature"),
        ({"prompt": "x"}, 422, "model"),
        (["not", "an", "object"], 400, None),
    ],
)
def test_what_this_stage_refuses(payload: object, status: int, param: str | None) -> None:
    with pytest.raises(errors.ApiError) as raised:
        parse_completion(payload, 16)
    assert (raised.value.status, raised.value.param) == (status, param)
    assert not raised.value.retryable


def test_a_stream_is_asked_with_stream_and_its_usage_with_stream_options() -> None:
    chat = {"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": True}
    asked = parse_chat(chat | {"stream_options": {"include_usage": True}}, ChatTemplate.PLAIN, 1)
    assert asked.stream and asked.include_usage and asked.chat
    asked = parse_completion({"model": "m", "prompt": "x", "stream": True}, 16)
    assert asked.stream and not asked.include_usage
    assert not parse_completion({"model": "m", "prompt": "x"}, 16).stream


def test_the_text_is_cut_at_the_first_stop_sequence() -> None:
    assert cut_at_stop("abc;def.ghi", (".", ";")) == ("abc", True)
    assert cut_at_stop("abc", ("x", "")) == ("abc", False)


def test_a_body_carries_usage_and_why_it_finished() -> None:
    ask = parse_chat(
        {"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 4}, ChatTemplate.PLAIN, 1
    )
    out = body(ask, Answer("abcd", 3, 4), "r1", 100)
    assert out["id"] == "chatcmpl-r1" and out["object"] == "chat.completion"
    assert out["choices"][0]["message"] == {"role": "assistant", "content": "abcd"}
    assert out["choices"][0]["finish_reason"] == "length"
    assert out["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}


@pytest.mark.parametrize(
    ("status", "reason", "http", "code"),
    [
        ("ok", None, None, None),
        ("rejected", "unknown model: nope", 404, "model_not_found"),
        ("rejected", "max_tokens 600 exceeds tinylm's limit 512", 400, "context_length_exceeded"),
        ("rejected", "invalid request: validation failed: prompt", 400, "invalid_request_error"),
        ("rejected", "deadline cannot be met: queue", 503, "model_overloaded"),
        ("rejected", "no server for m in time", 503, "model_overloaded"),
        ("rejected", "allocation failed: no GPUs", 503, "model_unavailable"),
        ("rejected", "reply_topic x is not allowed", 500, "gateway_misconfigured"),
        ("failed", "servers tried: a, b; last error: boom", 502, "upstream_failed"),
        ("failed", "result too large to send", 500, "result_too_large"),
    ],
)
def test_router_outcomes_become_client_errors(
    status: str, reason: str | None, http: int | None, code: str | None
) -> None:
    error = errors.from_result(status, reason, "m")
    assert (error.status if error else None) == http
    if error is not None:
        assert code in (error.code, error.type)
        assert set(error.body()["error"]) == {"message", "type", "param", "code"}


def test_throttling_says_when_to_come_back_and_hopeless_errors_say_do_not_retry() -> None:
    assert errors.rate_limited("slow down", 12).headers() == {"retry-after": "12"}
    assert errors.model_not_found("m").headers() == {"x-should-retry": "false"}
    assert errors.timed_out(30).status == 504


def key(**changes: object) -> ApiKey:
    values: dict[str, object] = {
        "key_id": "k1",
        "tenant": Tenant("t1", "acme", Limits()),
        "name": "n",
        "prefix": "sk-llmf-abcdef",
        "scopes": (),
        "limits": Limits(),
        "created_at": NOW,
    }
    return ApiKey(**(values | changes))  # type: ignore[arg-type]


def test_keys_are_stored_only_as_their_hash() -> None:
    secret = make_key("s3cret")
    assert secret.startswith("sk-llmf-") and display_prefix(secret) == "sk-llmf-s3cret"
    assert hash_key(secret) != secret and len(hash_key(secret)) == 64 and hash_key(secret) == hash_key(secret)


def test_unknown_revoked_and_expired_keys_are_refused() -> None:
    assert check_key(None, NOW).code == "invalid_api_key"  # type: ignore[union-attr]
    assert check_key(key(revoked_at=NOW), NOW).code == "api_key_revoked"  # type: ignore[union-attr]
    assert check_key(key(expires_at=NOW - timedelta(seconds=1)), NOW).code == "api_key_expired"  # type: ignore[union-attr]
    assert check_key(key(expires_at=NOW + timedelta(days=1)), NOW) is None


def test_scopes_name_the_models_a_key_may_use() -> None:
    assert check_scope(key(), "any") is None
    assert check_scope(key(scopes=("echo",)), "echo") is None
    refused = check_scope(key(scopes=("echo",)), "tinylm")
    assert refused is not None and refused.status == 403


def test_the_catalogue_lists_configured_and_loaded_models() -> None:
    catalogue = Catalogue({"echo": ModelSpec("echo", tier="hot")})
    catalogue.server_allocated("s1", "eu-west-1")
    catalogue.model_loaded("llama", "s1", "eu-west-1")
    catalogue.model_loaded("echo", "s2", "us-east-1")
    listing = {m["id"]: m for m in catalogue.listing(5)}
    assert listing["echo"]["tier"] == "hot" and listing["echo"]["loaded"] is True
    assert listing["echo"]["regions"] == ["us-east-1"] and listing["llama"]["regions"] == ["eu-west-1"]
    assert catalogue.knows("llama") and not catalogue.knows("other")
    catalogue.server_released("s1")
    assert not catalogue.knows("llama") and [m["id"] for m in catalogue.listing(5)] == ["echo"]
    catalogue.model_unloaded("echo", "s2")
    assert catalogue.knows("echo") and catalogue.listing(5)[0]["loaded"] is False
