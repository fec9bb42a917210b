"""The gateway's HTTP handlers: request in, one use-case call, OpenAI-shaped answer or error."""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime

from opentelemetry import propagate
from opentelemetry.trace import SpanKind
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from services.gateway.batch_handlers import batch_routes
from services.gateway.domain.errors import ApiError, invalid
from services.gateway.domain.limits import Limit
from services.gateway.domain.requests import Ask, parse_chat, parse_completion
from services.gateway.jobs import GatewayApp
from services.gateway.use_cases.streaming import Streaming

log = logging.getLogger(__name__)
INTERNAL = ApiError(500, "The gateway failed on this request; try again", "server_error", "internal_error")
# No proxy between the gateway and its client may hold the events back.
STREAM_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


def error_response(error: ApiError) -> JSONResponse:
    """An ApiError as OpenAI's clients expect it."""
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers())


async def _json(request: Request) -> object:
    try:
        return json.loads(await request.body())
    except ValueError:
        raise invalid("We could not parse the JSON body of your request") from None


class Endpoints:
    """The gateway's HTTP endpoints over the assembled app: parse, one use-case call, answer."""

    def __init__(self, app: GatewayApp) -> None:
        self.app = app
        self.tracer = app.runtime.tracer_provider.get_tracer("llmfleet.gateway")
        self.streaming = Streaming(app.serving)

    def completion(self, name: str, parse: Callable[[object], Ask]) -> Callable[[Request], Awaitable[Response]]:
        """The handler of one completion route, counted and timed under `name`."""
        metrics = self.app.metrics

        async def handle(request: Request) -> Response:
            started = time.perf_counter()
            with self._traced(request, name):
                response = await self._answer(request, name, parse)
            metrics.requests.labels(name, str(response.status_code)).inc()
            metrics.latency.labels(name).observe(time.perf_counter() - started)
            return response

        return handle

    async def _answer(self, request: Request, name: str, parse: Callable[[object], Ask]) -> Response:
        try:
            ask = parse(await _json(request))
            if ask.stream:  # the status and headers go once the first chunk is here: errors before it are HTTP errors
                events = await self.streaming.open(request.headers.get("authorization"), ask)
                return StreamingResponse(events, media_type="text/event-stream", headers=STREAM_HEADERS)
            reply = await self.app.serving.complete(request.headers.get("authorization"), ask)
        except ApiError as error:
            if error.status == 429:
                limit = next((k.value for k in Limit if k.value in error.message), "other")
                self.app.metrics.throttled.labels(limit).inc()
            return error_response(error)
        except Exception:  # a gateway bug: 500 here (Starlette would re-raise it and drop the connection)
            log.exception("unhandled error in the gateway (%s)", name)
            return error_response(INTERNAL)
        # As OpenAI's openai-processing-ms: what the fleet took, so a client sees the gateway's share.
        return JSONResponse(reply.body, headers={"x-llmfleet-upstream-ms": f"{reply.upstream_s * 1000:.2f}"})

    @contextlib.contextmanager
    def _traced(self, request: Request, name: str) -> Iterator[None]:
        """A server span per call, continuing the client's `traceparent` when it sends one."""
        if not self.app.settings.trace_requests and "traceparent" not in request.headers:
            yield
            return
        parent = propagate.extract(dict(request.headers))
        with self.tracer.start_as_current_span(f"POST /v1/{name}", context=parent, kind=SpanKind.SERVER):
            yield

    def parse_completion(self, payload: object) -> Ask:
        """A completion body, with the configured default max_tokens."""
        return parse_completion(payload, self.app.settings.default_max_tokens)

    def parse_chat(self, payload: object) -> Ask:
        """A chat body, rendered by its model's chat template."""
        model = str(payload.get("model", "")) if isinstance(payload, dict) else ""
        return parse_chat(payload, self.app.catalogue.template(model), self.app.settings.default_max_tokens)

    async def models(self, request: Request) -> Response:
        """`GET /v1/models` (a key is needed, as with OpenAI)."""
        try:
            await self.app.keys.authenticate(request.headers.get("authorization"), datetime.now(UTC))
        except ApiError as error:
            return error_response(error)
        return JSONResponse({"object": "list", "data": self.app.catalogue.listing(int(time.time()))})

    async def health(self, _request: Request) -> Response:
        """The process is up."""
        return PlainTextResponse("up")

    async def ready(self, _request: Request) -> Response:
        """Started, broker connected, reply topic read, HTTP serving."""
        ok, reason = self.app.ready()
        return PlainTextResponse(reason, status_code=200 if ok else 503)


def register(app: GatewayApp) -> None:
    """Build the gateway's ASGI app on `app`: the OpenAI routes and the probes."""
    endpoints = Endpoints(app)
    routes = [
        Route("/v1/completions", endpoints.completion("completions", endpoints.parse_completion), methods=["POST"]),
        Route("/v1/chat/completions", endpoints.completion("chat/completions", endpoints.parse_chat), methods=["POST"]),
        Route("/v1/models", endpoints.models, methods=["GET"]),
        Route("/health", endpoints.health, methods=["GET"]),
        Route("/ready", endpoints.ready, methods=["GET"]),
        *batch_routes(app),
    ]
    app.http = Starlette(routes=routes, exception_handlers={HTTPException: _http_error})


async def _http_error(_request: Request, exc: Exception) -> Response:
    """Starlette's own errors (no such route, wrong method) in OpenAI's shape."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    kind = "not_found" if status == 404 else "method_not_allowed" if status == 405 else "http_error"
    return error_response(ApiError(status, f"{exc}", "invalid_request_error", kind, retryable=False))
