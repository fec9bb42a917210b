"""Chat messages into one prompt, through the model's chat template (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum


class ChatTemplate(StrEnum):
    """How a model expects a conversation written out; chosen per model in settings."""

    CHATML = "chatml"  # <|im_start|>role\ncontent<|im_end|>, as Qwen and many fine-tunes
    LLAMA2 = "llama2"  # [INST] <<SYS>> ... <</SYS>> ... [/INST]
    PLAIN = "plain"  # "role: content" lines, then "assistant:"; models without a format of their own


@dataclass(frozen=True)
class Message:
    """One chat message: a role and its text."""

    role: str
    content: str


def render(messages: Sequence[Message], template: ChatTemplate) -> str:
    """The prompt `template` makes of `messages`, ending where the assistant's answer starts."""
    if template is ChatTemplate.CHATML:
        turns = "".join(f"<|im_start|>{m.role}\n{m.content}<|im_end|>\n" for m in messages)
        return turns + "<|im_start|>assistant\n"
    if template is ChatTemplate.LLAMA2:
        return _llama2(messages)
    return "".join(f"{m.role}: {m.content}\n" for m in messages) + "assistant:"


def _llama2(messages: Sequence[Message]) -> str:
    """Llama 2's format: the system prompt folds into the first user turn."""
    system = "\n".join(m.content for m in messages if m.role in ("system", "developer"))
    out, first = "", True
    for m in messages:
        if m.role == "user":
            text = f"<<SYS>>\n{system}\n<</SYS>>\n\n{m.content}" if first and system else m.content
            out += f"<s>[INST] {text} [/INST]"
            first = False
        elif m.role == "assistant":
            out += f" {m.content} </s>"
    return out


def content_text(content: object) -> str:
    """A message's content as text: a string, or the text parts of a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""
