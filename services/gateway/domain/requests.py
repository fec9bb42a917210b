"""The OpenAI request bodies this stage serves, validated, and what each asks of the fleet (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.gateway.domain.chat import ChatTemplate, Message, content_text, render
from services.gateway.domain.errors import invalid, unprocessable


class StreamOptions(BaseModel):
    """`stream_options`: with `include_usage`, a last chunk carries `usage` (and no choices)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    include_usage: bool = False


class _Body(BaseModel):
    """Fields both endpoints share; unknown fields are ignored, as OpenAI's newer clients send more."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    model: str = Field(min_length=1, max_length=200)
    max_tokens: int | None = Field(default=None, ge=1, le=8192)
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    n: int = Field(default=1, ge=1, le=128)
    stop: str | list[str] | None = None
    user: str | None = Field(default=None, max_length=256)
    stream: bool = False
    stream_options: StreamOptions | None = None


class CompletionBody(_Body):
    """`POST /v1/completions`."""

    prompt: str | list[str]
    echo: bool = False
    best_of: int | None = None
    logprobs: int | None = None


class ChatMessage(BaseModel):
    """One message of `messages`."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None


class ChatBody(_Body):
    """`POST /v1/chat/completions`."""

    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=8192)
    logprobs: bool | None = None


@dataclass(frozen=True)
class Ask:
    """What one API call asks of the fleet: a model, one prompt, sampling and stop sequences."""

    model: str
    prompt: str
    max_tokens: int
    temperature: float
    top_p: float
    stop: tuple[str, ...]
    user: str | None
    chat: bool
    stream: bool = False  # answer as server-sent events, token by token
    include_usage: bool = False  # streamed: a last chunk with `usage`


def parse_completion(payload: object, default_max_tokens: int) -> Ask:
    """A `/v1/completions` body as an `Ask`, or the error saying what is wrong with it."""
    body = _validate(CompletionBody, payload)
    _common_checks(body)
    if body.echo or (body.best_of or 1) > 1 or body.logprobs:
        raise invalid("`echo`, `best_of` > 1 and `logprobs` are not supported", "echo")
    prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
    if len(prompts) != 1:
        raise invalid("Send one prompt per request (a list of several is not supported yet)", "prompt")
    return _ask(body, prompts[0], body.max_tokens or default_max_tokens, chat=False)


def parse_chat(payload: object, template: ChatTemplate, default_max_tokens: int) -> Ask:
    """A `/v1/chat/completions` body as an `Ask`, its messages rendered by the model's template."""
    body = _validate(ChatBody, payload)
    _common_checks(body)
    if body.logprobs:
        raise invalid("`logprobs` is not supported", "logprobs")
    messages = [Message(m.role, content_text(m.content)) for m in body.messages]
    limit = body.max_completion_tokens or body.max_tokens or default_max_tokens
    return _ask(body, render(messages, template), limit, chat=True)


def _validate(model: type[_Body], payload: object) -> Any:
    """Validate the JSON body; the first problem becomes a 422 naming the field."""
    if not isinstance(payload, dict):
        raise invalid("The request body must be a JSON object")
    try:
        return model.model_validate(payload)
    except ValidationError as error:
        first = error.errors()[0]
        param = ".".join(str(p) for p in first["loc"]) or None
        raise unprocessable(f"Invalid value for `{param}`: {first['msg']}", param) from None


def _common_checks(body: _Body) -> None:
    """What the gateway refuses whatever the endpoint: stream options without a stream, several choices, many stops."""
    if body.stream_options is not None and not body.stream:
        raise invalid("The 'stream_options' parameter is only allowed when 'stream' is enabled.", "stream_options")
    if body.n != 1:
        raise invalid("Only `n = 1` is supported", "n")
    if isinstance(body.stop, list) and len(body.stop) > 4:
        raise invalid("At most 4 stop sequences", "stop")


def _ask(body: _Body, prompt: str, max_tokens: int, chat: bool) -> Ask:
    stop = (body.stop,) if isinstance(body.stop, str) else tuple(body.stop or ())
    usage = body.stream_options is not None and body.stream_options.include_usage
    return Ask(body.model, prompt, max_tokens, body.temperature, body.top_p, stop, body.user, chat, body.stream, usage)


def prompt_tokens(prompt: str) -> int:
    """The prompt's tokens as the fleet's byte-level models count them (an estimate for others)."""
    return len(prompt.encode())
