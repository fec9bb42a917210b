"""A streamed call: admitted as any call, then its chunks as server-sent events as they come, then the finish.

Errors before the first chunk (a key, a limit, the router's rejection, no answer in time) are
raised, so the handler answers them with their HTTP status. Once the stream has begun, an error
is an SSE `error` event followed by `[DONE]`. The limits are settled by the same code as an
unstreamed call (`Serving.answer`), from the one final result; a client that goes away cancels
the call, which settles as an unstreamed call whose client went away.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from services.gateway.domain import errors
from services.gateway.domain.requests import Ask
from services.gateway.domain.responses import Answer
from services.gateway.domain.streaming import DONE, StreamState, sse, sse_error
from services.gateway.use_cases.serving import Serving
from shared.events import InferenceCompleted
from shared.events.inference import InferenceChunk

Call = asyncio.Future[tuple[InferenceCompleted, float]]
log = logging.getLogger(__name__)


@dataclass
class Streaming:
    """The streaming use case over the completion use case (same keys, limits, fleet and settlement)."""

    serving: Serving

    async def open(self, authorization: str | None, ask: Ask) -> AsyncIterator[bytes]:
        """The stream's SSE bytes, once its first chunk (or its result) is here; an ApiError before that."""
        claim, prompt, now = await self.serving.admitted(authorization, ask)
        fleet, request_id = self.serving.fleet, claim.request_id
        chunks: asyncio.Queue[InferenceChunk | None] = asyncio.Queue()  # None: the call has ended
        fleet.listen(request_id, chunks.put_nowait)
        started = time.perf_counter()
        call: Call = asyncio.ensure_future(self.serving.answer(claim, ask, prompt, now))
        call.add_done_callback(lambda _call: chunks.put_nowait(None))
        try:
            first = await chunks.get()
            if first is None:  # the result came first: a rejection, a failure, a timeout, or an unstreamed answer
                result, _ = call.result()
                if error := errors.from_result(result.status, result.reason, ask.model):
                    raise error
        except BaseException:
            fleet.unlisten(request_id)
            call.cancel()
            raise
        self.serving.observe("first_token", time.perf_counter() - started)
        state = StreamState(ask, request_id, int(time.time()))
        return self._events(state, call, chunks, first, prompt)

    async def _events(
        self,
        state: StreamState,
        call: Call,
        chunks: asyncio.Queue[InferenceChunk | None],
        item: InferenceChunk | None,
        prompt: int,
    ) -> AsyncIterator[bytes]:
        """Each chunk as it comes, then the finish (and usage), then [DONE]; an error event if the call fails now."""
        try:
            for body in state.opening():
                yield sse(body)
            while item is not None:
                for body in state.on_chunk(item.index, item.text):
                    yield sse(body)
                item = await chunks.get()
            try:
                result, _ = call.result()
                error = errors.from_result(result.status, result.reason, state.ask.model)
            except errors.ApiError as raised:
                error = raised
            except Exception:  # a gateway bug: the stream still ends with an error event and [DONE]
                log.exception("streamed call %s failed in the gateway", state.request_id)
                error = errors.ApiError(500, "The gateway failed on this request", "server_error", "internal_error")
            if error is not None:
                yield sse_error(error.body())
            else:
                answer = Answer(result.text, max(result.tokens_in, prompt), result.tokens_out)
                for body in state.on_result(answer):
                    yield sse(body)
            yield DONE
        finally:  # also when the client went away: stop listening, and cancel the call if it still runs
            self.serving.fleet.unlisten(state.request_id)
            if not call.done():
                call.cancel()
