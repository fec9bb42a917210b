"""The Batch API's calls: upload a file, create, read and cancel a batch, read a file (a key's tenant only)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from services.gateway.adapters.batch_repository import BatchRepository
from services.gateway.domain.batches import (
    ENDPOINTS,
    BatchRecord,
    BatchStatus,
    FileRecord,
    batch_object,
    can_move,
    cancel_error,
    file_object,
    window_of,
)
from services.gateway.domain.errors import ApiError, invalid
from services.gateway.domain.keys import ApiKey
from shared.unit_of_work import UnitOfWork

PURPOSES = ("batch",)


def _not_found(what: str, ident: str) -> ApiError:
    return ApiError(404, f"No such {what}: '{ident}'", "invalid_request_error", "not_found", None, None, False)


async def upload(
    store: UnitOfWork[BatchRepository], key: ApiKey, filename: str, purpose: str, content: bytes, now: datetime
) -> dict[str, Any]:
    """`POST /v1/files`: store a batch input file (checked line by line when a batch uses it)."""
    if purpose not in PURPOSES:
        raise invalid(f"Invalid purpose '{purpose}': this gateway takes files for {', '.join(PURPOSES)}", "purpose")
    record = FileRecord(f"file-{uuid.uuid4().hex}", key.tenant.tenant_id, purpose, filename, len(content), now)
    async with store.transaction() as repository:
        await repository.add_file(record, content)
    return file_object(record)


async def file(store: UnitOfWork[BatchRepository], key: ApiKey, file_id: str) -> dict[str, Any]:
    """`GET /v1/files/{id}`."""
    async with store.transaction() as repository:
        record = await repository.file(file_id, key.tenant.tenant_id)
    if record is None:
        raise _not_found("file", file_id)
    return file_object(record)


async def content(store: UnitOfWork[BatchRepository], key: ApiKey, file_id: str) -> bytes:
    """`GET /v1/files/{id}/content`: the bytes of an uploaded or output file."""
    async with store.transaction() as repository:
        data = await repository.content(file_id, key.tenant.tenant_id)
    if data is None:
        raise _not_found("file", file_id)
    return data


async def create(
    store: UnitOfWork[BatchRepository], key: ApiKey, payload: object, now: datetime, pool: str = "default"
) -> dict[str, Any]:
    """`POST /v1/batches`: a batch in `validating`; a runner checks its file and runs it."""
    if not isinstance(payload, dict):
        raise invalid("The request body must be a JSON object")
    endpoint, file_id = payload.get("endpoint"), payload.get("input_file_id")
    window, metadata = payload.get("completion_window", "24h"), payload.get("metadata")
    if endpoint not in ENDPOINTS:
        raise invalid(f"Invalid endpoint '{endpoint}': one of {', '.join(ENDPOINTS)}", "endpoint")
    if not isinstance(file_id, str):
        raise invalid("input_file_id is required", "input_file_id")
    if metadata is not None and not (
        isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values()) and len(metadata) <= 16
    ):
        raise invalid("metadata is at most 16 string values", "metadata")
    expires_at = now + window_of(str(window))
    record = BatchRecord(
        batch_id=f"batch_{uuid.uuid4().hex}",
        tenant_id=key.tenant.tenant_id,
        key_id=key.key_id,
        endpoint=str(endpoint),
        input_file_id=file_id,
        completion_window=str(window),
        status=BatchStatus.VALIDATING,
        created_at=now,
        expires_at=expires_at,
        metadata=metadata,
        pool=pool,
    )
    # Errors are raised outside the transaction: ApiError is frozen, and a context manager re-raising
    # an exception sets its __traceback__.
    async with store.transaction() as repository:
        found = await repository.file(file_id, key.tenant.tenant_id)
        if found is not None and found.purpose == "batch":
            await repository.add_batch(record)
    if found is None:
        raise _not_found("file", file_id)
    if found.purpose != "batch":
        raise invalid(f"File '{file_id}' was not uploaded for purpose 'batch'", "input_file_id")
    return batch_object(record)


async def retrieve(store: UnitOfWork[BatchRepository], key: ApiKey, batch_id: str) -> dict[str, Any]:
    """`GET /v1/batches/{id}`, with live counts while it runs."""
    async with store.transaction() as repository:
        record = await repository.batch(batch_id, key.tenant.tenant_id)
    if record is None:
        raise _not_found("batch", batch_id)
    return batch_object(record)


async def cancel(store: UnitOfWork[BatchRepository], key: ApiKey, batch_id: str, now: datetime) -> dict[str, Any]:
    """`POST /v1/batches/{id}/cancel`: `cancelling` now; the runner stops sending and ends it `cancelled`."""
    async with store.transaction() as repository:
        record = await repository.batch(batch_id, key.tenant.tenant_id, lock=True)
        error = _not_found("batch", batch_id) if record is None else cancel_error(record.status)
        if record is not None and error is None and can_move(record.status, BatchStatus.CANCELLING):
            await repository.set_status(batch_id, BatchStatus.CANCELLING, now)
            record = await repository.batch(batch_id, key.tenant.tenant_id)
    if error is not None or record is None:  # raised outside the transaction (see create)
        raise error or _not_found("batch", batch_id)
    return batch_object(record)
