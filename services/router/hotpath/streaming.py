"""One streamed request on one server: tokens forwarded as they come, the whole text as the result.

A streamed request runs alone on the model's decoupled variant (`<triton name><suffix>`, e.g.
`tinylm_stream`), through Triton's `generate_stream`. A server without the variant loaded serves
it unstreamed on the model itself: the client then gets the whole text at the end, which is late
but right (and logged once per server and model). Once a token has been forwarded, a failure is
final for the request: another server would send its tokens again.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from services.router.adapters.triton_client import BatchResult, Prompt, TritonClient, VariantMissing
from services.router.domain.requests import Pending

log = logging.getLogger(__name__)

Forward = Callable[[Pending, int, str, int], Awaitable[None]]  # (request, index, text, tokens so far)


class StreamBroken(Exception):
    """A stream failed after some of its tokens were forwarded: retrying elsewhere would repeat them."""


class Streamer:
    """Runs streamed requests; remembers (server, model) pairs without the variant, to log each once."""

    def __init__(self, suffix: str, forward: Forward) -> None:
        self._suffix = suffix
        self._forward = forward
        self._unstreamed: set[tuple[str, str]] = set()

    async def serve(self, client: TritonClient, server_id: str, model: str, request: Pending) -> BatchResult:
        """Stream `request` on `model`'s variant on this server (or serve it unstreamed where none is loaded)."""
        prompt = Prompt(request.prompt, request.max_tokens, request.temperature, request.top_p)
        forwarded = 0

        async def on_token(index: int, text: str, tokens: int) -> None:
            nonlocal forwarded
            forwarded += 1
            await self._forward(request, index, text, tokens)

        try:
            return await client.stream(model + self._suffix, prompt, on_token)
        except VariantMissing:
            if (server_id, model) not in self._unstreamed:
                self._unstreamed.add((server_id, model))
                log.warning(
                    "%s has no %s%s loaded: streamed requests are served unstreamed", server_id, model, self._suffix
                )
            return await client.infer(model, [prompt])
        except Exception as error:
            if forwarded:
                raise StreamBroken(f"stream broke after {forwarded} tokens: {type(error).__name__}: {error}") from error
            raise
