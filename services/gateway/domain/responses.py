"""OpenAI response bodies from a finished request (pure: id and clock passed in)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.gateway.domain.requests import Ask


@dataclass(frozen=True)
class Answer:
    """A request the fleet answered `ok`: its text and token counts."""

    text: str
    tokens_in: int
    tokens_out: int


def cut_at_stop(text: str, stop: tuple[str, ...]) -> tuple[str, bool]:
    """The text up to the first stop sequence (the fleet does not stop by itself), and whether one was found."""
    cuts = [i for i in (text.find(s) for s in stop if s) if i >= 0]
    return (text[: min(cuts)], True) if cuts else (text, False)


def usage(answer: Answer) -> dict[str, int]:
    """The `usage` object every response carries."""
    return {
        "prompt_tokens": answer.tokens_in,
        "completion_tokens": answer.tokens_out,
        "total_tokens": answer.tokens_in + answer.tokens_out,
    }


def body(ask: Ask, answer: Answer, request_id: str, created: int) -> dict[str, Any]:
    """The completion or chat completion body for `answer`."""
    text, stopped = cut_at_stop(answer.text, ask.stop)
    finish = "stop" if stopped or answer.tokens_out < ask.max_tokens else "length"
    if ask.chat:
        choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": text}}
        kind, prefix = "chat.completion", "chatcmpl-"
    else:
        choice, kind, prefix = {"index": 0, "text": text}, "text_completion", "cmpl-"
    choice |= {"finish_reason": finish, "logprobs": None}
    return {
        "id": prefix + request_id,
        "object": kind,
        "created": created,
        "model": ask.model,
        "choices": [choice],
        "usage": usage(answer),
    }
