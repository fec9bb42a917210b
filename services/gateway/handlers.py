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
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from services.gateway.domain.errors import ApiError, invalid
from services.gateway.domain.limits import Limit
from services.gateway.domain.requests import Ask, parse_chat, parse_completion
from services.gateway.jobs import GatewayApp

log = logging.getLogger(__name__)
INTERNAL = ApiError(500, "The gateway failed on this request; try again", "server_error", "internal_error")


def error_response(error: ApiError) -> JSONResponse:
    """An ApiError as OpenAI's clients expect it."""
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers())


async def _json(request: Request) -> object:
    try:
        return json.loads(await request.body())
    except ValueError:
        raise invalid("We could not parse the JSON body of your request") from None


def register(app: GatewayApp) -> None:
    """Build the gateway's ASGI app on `app`: the OpenAI routes and the probes."""
    settings, metrics = app.settings, app.metrics
    tracer = app.runtime.tracer_provider.get_tracer("llmfleet.gateway")

    @contextlib.contextmanager
    def traced(request: Request, name: str) -> Iterator[None]:
        """A server span per call, continuing the client's `traceparent` when it sends one."""
        if not settings.trace_requests and "traceparent" not in request.headers:
            yield
            return
        parent = propagate.extract(dict(request.headers))
        with tracer.start_as_current_span(f"POST /v1/{name}", context=parent, kind=SpanKind.SERVER):
            yield

    def endpoint(name: str, parse: Callable[[object], Ask]) -> Callable[[Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            started = time.perf_counter()
            with traced(request, name):
                response = await answer(request)
            metrics.requests.labels(name, str(response.status_code)).inc()
            metrics.latency.labels(name).observe(time.perf_counter() - started)
            return response

        async def answer(request: Request) -> Response:
            try:
                ask = parse(await _json(request))
                reply = await app.serving.complete(request.headers.get("authorization"), ask)
                # As OpenAI's openai-processing-ms: what the fleet took, so a client sees the gateway's share.
                upstream = {"x-llmfleet-upstream-ms": f"{reply.upstream_s * 1000:.2f}"}
                response: Response = JSONResponse(reply.body, headers=upstream)
            except ApiError as error:
                response = error_response(error)
                if error.status == 429:
                    metrics.throttled.labels(next((k.value for k in Limit if k.value in error.message), "other")).inc()
            except Exception:  # a gateway bug or a database error: 500 here (Starlette would re-raise it)
                log.exception("unhandled error in the gateway (%s)", name)
                response = error_response(INTERNAL)
            return response

        return handle

    def parse_chat_body(payload: object) -> Ask:
        template = app.catalogue.template(str(payload.get("model", ""))) if isinstance(payload, dict) else None
        return parse_chat(payload, template or app.catalogue.template(""), settings.default_max_tokens)

    async def models(request: Request) -> Response:
        try:
            await app.keys.authenticate(request.headers.get("authorization"), datetime.now(UTC))
        except ApiError as error:
            return error_response(error)
        return JSONResponse({"object": "list", "data": app.catalogue.listing(int(time.time()))})

    async def health(_request: Request) -> Response:
        return PlainTextResponse("up")

    async def ready(_request: Request) -> Response:
        ok, reason = app.ready()
        return PlainTextResponse(reason, status_code=200 if ok else 503)

    routes = [
        Route(
            "/v1/completions",
            endpoint("completions", lambda p: parse_completion(p, settings.default_max_tokens)),
            methods=["POST"],
        ),
        Route("/v1/chat/completions", endpoint("chat", parse_chat_body), methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/ready", ready, methods=["GET"]),
    ]
    app.http = Starlette(routes=routes, exception_handlers={HTTPException: _http_error})


async def _http_error(_request: Request, exc: Exception) -> Response:
    """Starlette's own errors (no such route, wrong method) in OpenAI's shape."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    kind = "not_found" if status == 404 else "method_not_allowed" if status == 405 else "http_error"
    return error_response(ApiError(status, f"{exc}", "invalid_request_error", kind, retryable=False))
