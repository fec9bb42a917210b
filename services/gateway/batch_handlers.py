"""The Batch API's HTTP handlers: files and batches, each one use-case call behind the key check."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.gateway.domain.errors import ApiError, invalid
from services.gateway.domain.keys import ApiKey
from services.gateway.jobs import GatewayApp
from services.gateway.use_cases import batches

log = logging.getLogger(__name__)
CHUNK = 1 << 20
INTERNAL = ApiError(500, "The gateway failed on this request; try again", "server_error", "internal_error")

Handler = Callable[[Request, ApiKey, datetime], Awaitable[Response]]


def _error(error: ApiError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers())


class BatchEndpoints:
    """`/v1/files` and `/v1/batches` over the assembled app."""

    def __init__(self, app: GatewayApp) -> None:
        self.app = app
        self.store = app.batches.store

    def keyed(self, name: str, handle: Handler) -> Callable[[Request], Awaitable[Response]]:
        """`handle` behind the key check, errors in OpenAI's shape, counted under `name`."""
        metrics = self.app.metrics

        async def endpoint(request: Request) -> Response:
            now = datetime.now(UTC)
            try:
                key = await self.app.keys.authenticate(request.headers.get("authorization"), now)
                response = await handle(request, key, now)
            except ApiError as error:
                response = _error(error)
            except Exception:  # a gateway bug: 500, not a dropped connection
                log.exception("unhandled error in the gateway (%s)", name)
                response = _error(INTERNAL)
            metrics.requests.labels(name, str(response.status_code)).inc()
            return response

        return endpoint

    async def upload(self, request: Request, key: ApiKey, now: datetime) -> Response:
        """`POST /v1/files` (multipart: `file`, `purpose`); the upload is spooled to disk, not held in memory."""
        limit = self.app.batches.max_file_bytes
        if int(request.headers.get("content-length") or 0) > limit + CHUNK:
            raise ApiError(413, f"The file is larger than {limit} bytes", "invalid_request_error", "file_too_large")
        async with request.form(max_files=1, max_fields=8) as form:
            upload, purpose = form.get("file"), form.get("purpose")
            if not isinstance(upload, UploadFile):
                raise invalid("A `file` part is required (multipart/form-data)", "file")
            data = bytearray()
            while chunk := await upload.read(CHUNK):
                data += chunk
                if len(data) > limit:
                    raise ApiError(
                        413, f"The file is larger than {limit} bytes", "invalid_request_error", "file_too_large"
                    )
            filename = upload.filename or "upload.jsonl"
        body = await batches.upload(self.store, key, filename, str(purpose or ""), bytes(data), now)
        return JSONResponse(body)

    async def file(self, request: Request, key: ApiKey, _now: datetime) -> Response:
        """`GET /v1/files/{file_id}`."""
        return JSONResponse(await batches.file(self.store, key, request.path_params["file_id"]))

    async def content(self, request: Request, key: ApiKey, _now: datetime) -> Response:
        """`GET /v1/files/{file_id}/content`: JSONL."""
        data = await batches.content(self.store, key, request.path_params["file_id"])
        return Response(data, media_type="application/jsonl")

    async def create(self, request: Request, key: ApiKey, now: datetime) -> Response:
        """`POST /v1/batches`."""
        try:
            payload = json.loads(await request.body())
        except ValueError:
            raise invalid("We could not parse the JSON body of your request") from None
        return JSONResponse(await batches.create(self.store, key, payload, now, self.app.batches.pool))

    async def retrieve(self, request: Request, key: ApiKey, _now: datetime) -> Response:
        """`GET /v1/batches/{batch_id}`."""
        return JSONResponse(await batches.retrieve(self.store, key, request.path_params["batch_id"]))

    async def cancel(self, request: Request, key: ApiKey, now: datetime) -> Response:
        """`POST /v1/batches/{batch_id}/cancel`."""
        return JSONResponse(await batches.cancel(self.store, key, request.path_params["batch_id"], now))


def batch_routes(app: GatewayApp) -> list[Route]:
    """The Batch API's routes."""
    e = BatchEndpoints(app)
    return [
        Route("/v1/files", e.keyed("files", e.upload), methods=["POST"]),
        Route("/v1/files/{file_id}", e.keyed("files", e.file), methods=["GET"]),
        Route("/v1/files/{file_id}/content", e.keyed("files", e.content), methods=["GET"]),
        Route("/v1/batches", e.keyed("batches", e.create), methods=["POST"]),
        Route("/v1/batches/{batch_id}", e.keyed("batches", e.retrieve), methods=["GET"]),
        Route("/v1/batches/{batch_id}/cancel", e.keyed("batches", e.cancel), methods=["POST"]),
    ]
