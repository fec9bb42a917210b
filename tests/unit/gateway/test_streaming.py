"""Streaming: OpenAI's chunk objects and SSE framing (pure), and the stream use case on fakes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.gateway.domain.errors import ApiError
from services.gateway.domain.limits import Limits
from services.gateway.domain.requests import Ask
from services.gateway.domain.responses import Answer, cut_at_stop
from services.gateway.domain.streaming import DONE, StreamState, held_back, sse, sse_error
from services.gateway.use_cases.streaming import Streaming
from shared.events import ResultStatus
from tests.unit.gateway.fakes import StreamingFleet
from tests.unit.gateway.test_use_cases import World


def asked(chat: bool = False, stop: tuple[str, ...] = (), usage: bool = False, max_tokens: int = 8) -> Ask:
    return Ask("tinylm", "p", max_tokens, 0.0, 1.0, stop, None, chat, stream=True, include_usage=usage)


def texts(chunks: list[dict[str, Any]]) -> str:
    """The text a client puts together from the chunks (completions or chat)."""
    out = ""
    for c in chunks:
        for choice in c["choices"]:
            out += choice["delta"].get("content", "") if "delta" in choice else choice["text"]
    return out


def test_completion_chunks_are_text_completion_objects_then_a_finish() -> None:
    state = StreamState(asked(), "r1", 100)
    chunks = state.opening() + state.on_chunk(0, "ab") + state.on_chunk(1, "c")
    chunks += state.on_result(Answer("abc", 1, 3))
    assert [c["object"] for c in chunks] == ["text_completion"] * 3
    assert {c["id"] for c in chunks} == {"cmpl-r1"} and chunks[0]["created"] == 100
    assert [c["choices"][0]["text"] for c in chunks] == ["ab", "c", ""]
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None, None, "stop"]  # 3 of 8 tokens: it stopped
    assert all("usage" not in c for c in chunks)


def test_chat_chunks_say_the_role_first_then_deltas_and_with_include_usage_a_last_usage_chunk() -> None:
    state = StreamState(asked(chat=True, usage=True, max_tokens=2), "r2", 5)
    chunks = state.opening() + state.on_chunk(0, "h") + state.on_chunk(1, "i") + state.on_result(Answer("hi", 4, 2))
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"} and chunks[0]["id"] == "chatcmpl-r2"
    assert [c["choices"][0]["delta"] for c in chunks[:-1]] == [
        {"role": "assistant", "content": ""},
        {"content": "h"},
        {"content": "i"},
        {},
    ]
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"  # all 2 tokens allowed were used
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == {
        "prompt_tokens": 4,
        "completion_tokens": 2,
        "total_tokens": 6,
    }
    assert all(c["usage"] is None for c in chunks[:-1])


def test_a_stop_sequence_across_chunks_is_never_sent_and_ends_the_text() -> None:
    state = StreamState(asked(stop=("END",)), "r", 0)
    sent = [texts(state.on_chunk(i, t)) for i, t in enumerate(["abE", "N", "Dxyz", "more"])]
    assert sent == ["ab", "", "", ""]  # "E" and "EN" were held back: they could start "END"
    finish = state.on_result(Answer("abENDxyzmore", 1, 8))
    assert texts(finish) == "" and finish[-1]["choices"][0]["finish_reason"] == "stop"


def test_a_held_back_tail_that_is_no_stop_is_sent_with_the_next_chunk_or_the_finish() -> None:
    state = StreamState(asked(stop=("xy",)), "r", 0)
    assert texts(state.on_chunk(0, "ax")) == "a"
    assert texts(state.on_chunk(1, "b")) == "xb"
    assert texts(state.on_chunk(2, "x")) == ""
    assert texts(state.on_result(Answer("axbx", 1, 4))) == "x"


def test_repeated_chunks_are_dropped_and_what_lost_chunks_missed_comes_from_the_result() -> None:
    state = StreamState(asked(), "r", 0)
    got = state.on_chunk(0, "a") + state.on_chunk(0, "a") + state.on_chunk(2, "c") + state.on_chunk(1, "b")
    assert texts(got) == "ab"  # the repeat and the chunk after a gap are dropped
    assert texts(state.on_result(Answer("abcd", 1, 4))) == "cd"


@given(
    st.text(alphabet="abc", max_size=30),
    st.lists(st.text(alphabet="abc", min_size=1, max_size=3), max_size=2),
    st.lists(st.integers(1, 4), max_size=10),
)
def test_the_streamed_text_is_the_unstreamed_text_however_cut(text: str, stop: list[str], sizes: list[int]) -> None:
    state, chunks, at = StreamState(asked(stop=tuple(stop)), "r", 0), [], 0
    for index, size in enumerate(sizes):
        chunks += state.on_chunk(index, text[at : at + size])
        at += size
    chunks += state.on_result(Answer(text, 1, len(text)))
    assert texts(chunks) == cut_at_stop(text, tuple(stop))[0]


def test_held_back_is_the_longest_tail_that_starts_a_stop_sequence() -> None:
    assert held_back("abcEN", ("END", "N!")) == 2
    assert held_back("abc", ("END",)) == 0 and held_back("abE", ()) == 0


def test_sse_framing() -> None:
    assert sse({"a": 1}) == b'data: {"a":1}\n\n' and DONE == b"data: [DONE]\n\n"
    assert sse_error({"error": {"message": "x"}}).startswith(b"event: error\ndata: {")


# ------------------------------------------------------------------ the use case, on fakes


class StreamWorld(World):
    def __init__(self, **fleet: Any) -> None:
        super().__init__()
        self.fleet = self.serving.fleet = StreamingFleet(**fleet)
        self.streaming = Streaming(self.serving)


async def events(stream: AsyncIterator[bytes]) -> list[Any]:
    """The parsed data of each event, [DONE] as the string."""
    out = []
    async for raw in stream:
        data = raw.decode().split("data: ", 1)[1].strip()
        out.append(data if data == "[DONE]" else json.loads(data))
    return out


async def test_a_stream_sends_a_chunk_per_fleet_chunk_then_finish_usage_and_done() -> None:
    world = StreamWorld()
    got = await events(await world.streaming.open(await world.key(key=Limits(concurrency=1)), asked(usage=True)))
    await world.ledger.flush()
    [sent] = world.fleet.sent
    assert sent.stream and got[-1] == "[DONE]"
    assert [c["choices"][0]["text"] for c in got[:-3]] == list("pppppppp")  # each token as its own chunk
    assert got[-3]["choices"][0]["finish_reason"] == "length" and got[-2]["usage"]["completion_tokens"] == 8
    assert [s.used for s in world.store.state.settled] == [9]  # settled like any call, from the final result
    assert world.fleet.listeners == {}


async def test_a_rejection_before_the_first_chunk_is_an_http_error() -> None:
    world = StreamWorld(status=ResultStatus.REJECTED, reason="unknown model: tinylm")
    with pytest.raises(ApiError) as raised:
        await world.streaming.open(await world.key(), asked())
    assert raised.value.status == 404 and world.fleet.listeners == {}


async def test_a_failure_after_the_stream_began_is_an_error_event_then_done() -> None:
    world = StreamWorld(fail_after=True)
    got = await events(await world.streaming.open(await world.key(), asked()))
    assert texts(got[:-2]) == "pppppppp"
    assert got[-2]["error"]["code"] == "upstream_failed" and got[-1] == "[DONE]"


async def test_a_client_that_goes_away_cancels_the_call_and_its_lease_is_given_back() -> None:
    world = StreamWorld()
    stream = await world.streaming.open(await world.key(key=Limits(concurrency=1)), asked())
    await anext(stream)
    await stream.aclose()  # what Starlette does when the client disconnects
    await asyncio.sleep(0.01)  # the cancelled call settles in its next turn
    await world.ledger.flush()
    assert world.fleet.listeners == {}
    [settled] = world.store.state.settled
    assert settled.used == settled.reserved  # as an unstreamed call whose client left: the reservation is kept
    assert world.store.state.leases == {}  # and the concurrency slot is free again


async def test_a_gateway_bug_after_the_stream_began_is_an_error_event_then_done(monkeypatch) -> None:
    world = StreamWorld()
    answer = world.serving.answer

    async def broken(*args: Any) -> Any:
        await answer(*args)
        raise RuntimeError("a bug")

    monkeypatch.setattr(world.serving, "answer", broken)
    got = await events(await world.streaming.open(await world.key(), asked()))
    assert texts(got[:-2]) == "pppppppp"
    assert got[-2]["error"]["code"] == "internal_error" and got[-1] == "[DONE]"
