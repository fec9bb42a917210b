"""Sending a batch to the best Triton server: scored choice, load tracking, bounded retries elsewhere."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind, Tracer, use_span
from tritonclient.utils import InferenceServerException

from services.router.adapters.metrics import RouterMetrics
from services.router.adapters.triton_client import BatchResult, Prompt, TritonClient
from services.router.domain.batching import Batch
from services.router.domain.registry import Registry, Server
from services.router.domain.scoring import rank
from services.router.hotpath.records import context_of, ticket
from services.router.hotpath.streaming import StreamBroken, Streamer
from services.router.settings import RouterSettings

log = logging.getLogger(__name__)


def lacks_model(error: Exception) -> bool:
    """True when Triton says it does not have the model ready (a server problem, not the batch's)."""
    text = str(error).lower()
    return "unknown model" in text or "not ready" in text or "not found" in text


@dataclass(frozen=True)
class Served:
    """A batch's completions and the server that produced them."""

    server_id: str
    result: BatchResult


@dataclass(frozen=True)
class NotServed:
    """Why a batch could not be served after its attempts, and whether waiting or splitting may help."""

    reason: str
    no_server: bool = False  # no healthy server had the model: wait for one, as in a cold start
    model_error: bool = False  # the server refused the batch (one row may be at fault): split it
    partial: bool = False  # a stream broke after forwarding tokens: no other server may repeat them


class Dispatcher:
    """Owns one Triton client per endpoint and the choice of server for each batch."""

    def __init__(self, registry: Registry, settings: RouterSettings, tracer: Tracer, metrics: RouterMetrics) -> None:
        self.registry = registry
        self._settings = settings
        self._tracer = tracer
        self._metrics = metrics
        self._clients: dict[str, TritonClient] = {}
        self._next_check: dict[str, float] = {}
        self._misses: dict[str, int] = {}
        self.streamer: Streamer | None = None  # set where results are published (streamed requests' tokens)

    def client(self, endpoint: str) -> TritonClient:
        """The (pooled) client of one endpoint."""
        if endpoint not in self._clients:
            self._clients[endpoint] = TritonClient(endpoint, timeout_s=self._settings.triton_timeout_s)
        return self._clients[endpoint]

    async def choose(self, batch: Batch, tried: set[str]) -> Server | None:
        """The best healthy server for the batch; a tried one only when no other is left; waits a while."""
        lead = batch.requests[0]
        give_up = time.monotonic() + self._settings.no_server_wait_s
        while True:
            servers = self.registry.candidates(batch.model_id, exclude=frozenset(tried))
            servers = servers or self.registry.candidates(batch.model_id)
            if servers:
                by_id = {s.server_id: s for s in servers}
                return by_id[rank([s.candidate() for s in servers], lead.region, lead.strategy)[0].server_id]
            if time.monotonic() >= give_up:
                return None
            await asyncio.sleep(0.05)  # the health check puts a recovered server back

    async def serve(self, batch: Batch) -> Served | NotServed:
        """Run the batch on up to `max_attempts` servers, best first, inside a batch span."""
        spans = [span for r in batch.requests if (span := ticket(r).span).is_recording()]
        if not spans:  # no row is traced: no batch or Triton spans either
            return await self._attempts(batch)
        with self._tracer.start_as_current_span(
            "router.batch",
            context=context_of(spans[0]),
            links=[Link(s.get_span_context()) for s in spans[1:]],
            attributes={
                "llmfleet.model_id": batch.model_id,
                "llmfleet.batch.size": len(batch.requests),
                "llmfleet.batch.reason": batch.reason,
            },
        ):
            return await self._attempts(batch)

    async def _attempts(self, batch: Batch) -> Served | NotServed:
        tried: set[str] = set()
        last: NotServed | None = None
        for _ in range(self._settings.max_attempts):
            if all(r.expired(time.monotonic()) for r in batch.requests):
                break  # nobody waits for this answer any more
            server = await self.choose(batch, tried)
            if server is None:
                if last is None or not last.model_error:
                    return NotServed("no healthy server has the model", no_server=True)
                break
            tried.add(server.server_id)
            outcome = await self._attempt(server, batch)
            if isinstance(outcome, Served):
                return outcome
            last = outcome
            if outcome.partial:
                break
        reason = last.reason if last is not None else "deadline passed before a server answered"
        return NotServed(
            f"failed after trying {sorted(tried) or 'no server'}: {reason}"[:500],
            model_error=last is not None and last.model_error,
        )

    def _time_left(self, batch: Batch) -> float:
        """How long a Triton call may take: the configured limit, or less if a row's deadline is sooner."""
        deadlines = [r.deadline for r in batch.requests if r.deadline is not None]
        limit = self._settings.triton_timeout_s
        if deadlines:
            limit = min(limit, max(0.001, max(deadlines) - time.monotonic()))
        return limit

    async def _attempt(self, server: Server, batch: Batch) -> Served | NotServed:
        prompts = [Prompt(r.prompt, r.max_tokens, r.temperature, r.top_p) for r in batch.requests]
        model = self.registry.triton_name(server.server_id, batch.model_id)
        server.inflight += 1
        self._metrics.inflight_batches.inc()
        traced = trace.get_current_span().is_recording()
        span = self._tracer.start_span(f"triton infer {model}", kind=SpanKind.CLIENT) if traced else trace.INVALID_SPAN
        span.set_attribute("llmfleet.server_id", server.server_id)
        try:
            with use_span(span, end_on_exit=True):  # the Triton call carries this span's traceparent
                # asyncio.timeout, not wait_for: no extra task and loop hop per batch on the hot path.
                async with asyncio.timeout(self._time_left(batch)):
                    client = self.client(server.endpoint)
                    if batch.reason == "stream" and self.streamer is not None:
                        result = await self.streamer.serve(client, server.server_id, model, batch.requests[0])
                    else:
                        result = await client.infer(model, prompts)
            server.ok += 1
            return Served(server.server_id, result)
        except Exception as error:  # any failure: try elsewhere; the batch's result says why at the end
            server.failed += 1
            self._metrics.triton_failures.labels(server.server_id).inc()
            cause = error.__cause__ if isinstance(error, StreamBroken) else error  # what broke the stream
            refused = isinstance(cause, InferenceServerException) and not lacks_model(cause)
            if not refused:
                # Transport failure, no answer in time (a hung server), or a restarted server that
                # has not loaded the model yet: out at once, until the health check sees it ready.
                server.healthy = False
            log.warning("batch of %s on %s failed: %r", batch.model_id, server.server_id, error)
            partial = isinstance(error, StreamBroken)
            return NotServed(
                f"{server.server_id}: {type(error).__name__}: {error}", model_error=refused, partial=partial
            )
        finally:
            server.inflight -= 1
            self._metrics.inflight_batches.dec()

    async def check_health(self, timeout_s: float = 2.0) -> None:
        """Ask servers whether they are ready; take failing ones out, put recovered ones back.

        A server that keeps failing is asked less and less often (up to `health_backoff_max_s`),
        so stale entries cost little; a check that times out changes nothing (a busy server is
        slow to answer, not down; a dead one refuses at once).
        """
        now = time.monotonic()
        due = [s for s in self.registry.servers.values() if self._next_check.get(s.server_id, 0.0) <= now]

        async def ready(server: Server) -> bool | None:
            """True when the server and every model placed on it say ready; None when it did not answer in time.

            A restarted server is ready before its models are loaded again; routing to it then
            would fail every row, so its models are asked too.
            """
            client = self.client(server.endpoint)
            models = sorted(set(self.registry.placements.get(server.server_id, {}).values()))
            try:
                async with asyncio.timeout(timeout_s):
                    if not await client.is_ready():
                        return False
                    return all([await client.is_ready(model) for model in models])
            except TimeoutError:
                return None

        for server, ok in zip(due, await asyncio.gather(*(ready(s) for s in due)), strict=True):
            if ok is None:
                continue
            if ok != server.healthy:
                log.info("server %s is %s", server.server_id, "ready again" if ok else "not ready")
            server.healthy = ok
            misses = 0 if ok else self._misses.get(server.server_id, 0) + 1
            self._misses[server.server_id] = misses
            pause = min(self._settings.health_backoff_max_s, self._settings.health_interval_s * 2 ** max(0, misses - 2))
            self._next_check[server.server_id] = now + (pause if misses else 0.0)

    async def close(self) -> None:
        """Close every client's connection pool."""
        for client in self._clients.values():
            await client.close()
