"""A streamed answer (pure): OpenAI's chunk objects from the fleet's chunks and result, and their SSE framing.

`StreamState` is what one streamed call has sent. Chunks arrive with their index; a repeat or a
gap is dropped, since the one final result carries the whole text and whatever the chunks missed
is sent from it. The text is cut at the first stop sequence: a tail that could be the start of
one is held back until the next chunk shows whether it is.
"""

from __future__ import annotations

import json
from typing import Any

from services.gateway.domain.requests import Ask
from services.gateway.domain.responses import Answer, cut_at_stop, usage

DONE = b"data: [DONE]\n\n"


def sse(data: dict[str, Any]) -> bytes:
    """One server-sent event carrying `data` as JSON."""
    return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


def sse_error(body: dict[str, Any]) -> bytes:
    """An error after the stream started (the HTTP status was sent): an `error` event with OpenAI's error body."""
    return b"event: error\n" + sse(body)


def held_back(text: str, stop: tuple[str, ...]) -> int:
    """How many characters at the end of `text` could be the start of a stop sequence."""
    longest = 0
    for s in stop:
        for k in range(min(len(s) - 1, len(text)), longest, -1):
            if text.endswith(s[:k]):
                longest = k
                break
    return longest


class StreamState:
    """One streamed call: the chunks to send for each piece of text, the finish and the usage."""

    def __init__(self, ask: Ask, request_id: str, created: int) -> None:
        self.ask = ask
        self.request_id = request_id
        self.created = created
        self.id = ("chatcmpl-" if ask.chat else "cmpl-") + request_id
        self.next_index = 0
        self.seen = ""  # the model's text so far, in order
        self.sent = ""  # what the client was sent of it
        self.stopped = False  # a stop sequence was found: nothing more is sent but the finish

    def opening(self) -> list[dict[str, Any]]:
        """The chunks before any text: a chat stream says the role first, as OpenAI's does."""
        return [self._chunk({"role": "assistant", "content": ""})] if self.ask.chat else []

    def on_chunk(self, index: int, text: str) -> list[dict[str, Any]]:
        """The chunks for the fleet's chunk `index` (none for a repeat, a gap, or after a stop)."""
        if index != self.next_index:
            return []
        self.next_index += 1
        return self._advance(self.seen + text, final=False)

    def on_result(self, answer: Answer) -> list[dict[str, Any]]:
        """The last chunks: text the chunks missed, the finish reason, and the usage when asked."""
        # The result's text is the whole text; a chunk stream that disagrees with it ends where it is.
        chunks = self._advance(answer.text if answer.text.startswith(self.seen) else self.seen, final=True)
        finish = "stop" if self.stopped or answer.tokens_out < self.ask.max_tokens else "length"
        chunks.append(self._chunk({} if self.ask.chat else "", finish))
        if self.ask.include_usage:
            chunks.append(self._envelope([]) | {"usage": usage(answer)})
        return chunks

    def _advance(self, seen: str, final: bool) -> list[dict[str, Any]]:
        self.seen = seen
        if self.stopped:
            return []
        end = len(seen) if final else len(seen) - held_back(seen, self.ask.stop)
        cut, found = cut_at_stop(seen, self.ask.stop)
        # A stop found ends the text, unless a longer one may still match from an earlier place.
        if found and len(cut) <= end:
            self.stopped, end = True, len(cut)
        text = seen[len(self.sent) : end]
        if not text:
            return []
        self.sent += text
        return [self._chunk({"content": text} if self.ask.chat else text)]

    def _chunk(self, piece: dict[str, str] | str, finish: str | None = None) -> dict[str, Any]:
        choice: dict[str, Any] = {"index": 0}
        choice |= {"delta": piece} if isinstance(piece, dict) else {"text": piece}
        choice |= {"logprobs": None, "finish_reason": finish}
        body = self._envelope([choice])
        if self.ask.include_usage:
            body["usage"] = None  # as OpenAI's: every chunk has the field, only the last one fills it
        return body

    def _envelope(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        kind = "chat.completion.chunk" if self.ask.chat else "text_completion"
        return {"id": self.id, "object": kind, "created": self.created, "model": self.ask.model, "choices": choices}
