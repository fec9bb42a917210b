"""The Batch API's lifecycle and objects, in OpenAI's shapes (pure: ids and clock passed in).

validating -> in_progress -> finalizing -> completed; validating -> failed (an invalid input
file); in_progress -> finalizing -> expired (the completion window ran out); validating or
in_progress -> cancelling -> cancelled. `finalizing` writes the output and error files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from services.gateway.domain.errors import ApiError, invalid

ENDPOINTS = ("/v1/completions", "/v1/chat/completions")
WINDOWS = {"24h": timedelta(hours=24)}


class BatchStatus(StrEnum):
    """OpenAI's batch statuses."""

    VALIDATING = "validating"
    FAILED = "failed"
    IN_PROGRESS = "in_progress"
    FINALIZING = "finalizing"
    COMPLETED = "completed"
    EXPIRED = "expired"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"


# Statuses a runner still has work in (claimed with a lease); the rest are final.
ACTIVE = (BatchStatus.VALIDATING, BatchStatus.IN_PROGRESS, BatchStatus.FINALIZING, BatchStatus.CANCELLING)
FINAL = (BatchStatus.FAILED, BatchStatus.COMPLETED, BatchStatus.EXPIRED, BatchStatus.CANCELLED)

_NEXT: dict[BatchStatus, tuple[BatchStatus, ...]] = {
    BatchStatus.VALIDATING: (BatchStatus.IN_PROGRESS, BatchStatus.FAILED, BatchStatus.CANCELLING),
    BatchStatus.IN_PROGRESS: (BatchStatus.FINALIZING, BatchStatus.CANCELLING),
    BatchStatus.FINALIZING: (BatchStatus.COMPLETED, BatchStatus.EXPIRED),
    BatchStatus.CANCELLING: (BatchStatus.CANCELLED,),
}


def can_move(current: BatchStatus, to: BatchStatus) -> bool:
    """Whether the lifecycle allows `current -> to`."""
    return to in _NEXT.get(current, ())


def moved(current: BatchStatus, to: BatchStatus) -> BatchStatus:
    """`to`, or ValueError when the lifecycle forbids it (a bug: callers check first)."""
    if not can_move(current, to):
        raise ValueError(f"a batch cannot go from {current} to {to}")
    return to


def cancel_error(current: BatchStatus) -> ApiError | None:
    """Why a batch in `current` cannot be cancelled (None: it can, or it already is being)."""
    if current in (BatchStatus.CANCELLING, BatchStatus.CANCELLED):
        return None
    if can_move(current, BatchStatus.CANCELLING):
        return None
    return ApiError(
        409,
        f"Cannot cancel a batch with status '{current}'",
        "invalid_request_error",
        "invalid_status",
        None,
        None,
        False,
    )


def line_request_id(batch_id: str, line_no: int) -> str:
    """The request id of a batch line: the same on every send, so a re-sent line is the same request."""
    return f"{batch_id}-{line_no}"


def parse_request_id(request_id: str) -> tuple[str, int] | None:
    """(batch id, line number) of a batch line's request id; None for any other id."""
    batch_id, _, number = request_id.rpartition("-")
    if not batch_id.startswith("batch_") or not number.isdigit():
        return None
    return batch_id, int(number)


def window_of(completion_window: str) -> timedelta:
    """The completion window as a duration, or the 400 OpenAI gives for another one."""
    if completion_window not in WINDOWS:
        raise invalid(
            f"Invalid completion_window '{completion_window}': only {', '.join(WINDOWS)} is supported",
            "completion_window",
        )
    return WINDOWS[completion_window]


@dataclass(frozen=True)
class Counts:
    """`request_counts`: lines in all, answered (ok), and in the error file."""

    total: int = 0
    completed: int = 0
    failed: int = 0


@dataclass(frozen=True)
class Usage:
    """Tokens over the batch's answered lines."""

    input_tokens: int = 0
    output_tokens: int = 0


@dataclass(frozen=True)
class BatchRecord:
    """A batch as stored."""

    batch_id: str
    tenant_id: str
    key_id: str
    endpoint: str
    input_file_id: str
    completion_window: str
    status: BatchStatus
    created_at: datetime
    expires_at: datetime
    metadata: dict[str, str] | None = None
    pool: str = "default"
    errors: list[dict[str, Any]] | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    times: dict[str, datetime] = field(default_factory=dict)  # in_progress_at, finalizing_at, ... when reached
    counts: Counts = Counts()
    usage: Usage = Usage()


def _unix(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp())


def batch_object(batch: BatchRecord) -> dict[str, Any]:
    """The batch as OpenAI's `Batch` object (timestamps in unix seconds)."""
    times = {
        f"{name}_at": _unix(batch.times.get(f"{name}_at"))
        for name in ("in_progress", "finalizing", "completed", "failed", "expired", "cancelling", "cancelled")
    }
    return {
        "id": batch.batch_id,
        "object": "batch",
        "endpoint": batch.endpoint,
        "errors": None if not batch.errors else {"object": "list", "data": batch.errors},
        "input_file_id": batch.input_file_id,
        "completion_window": batch.completion_window,
        "status": str(batch.status),
        "output_file_id": batch.output_file_id,
        "error_file_id": batch.error_file_id,
        "created_at": _unix(batch.created_at),
        "expires_at": _unix(batch.expires_at),
        **times,
        "request_counts": {
            "total": batch.counts.total,
            "completed": batch.counts.completed,
            "failed": batch.counts.failed,
        },
        "metadata": batch.metadata,
        "usage": {
            "input_tokens": batch.usage.input_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": batch.usage.output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": batch.usage.input_tokens + batch.usage.output_tokens,
        },
    }


@dataclass(frozen=True)
class FileRecord:
    """An uploaded or generated file (its bytes are fetched apart)."""

    file_id: str
    tenant_id: str
    purpose: str
    filename: str
    size: int
    created_at: datetime


def file_object(record: FileRecord) -> dict[str, Any]:
    """The file as OpenAI's `FileObject`."""
    return {
        "id": record.file_id,
        "object": "file",
        "bytes": record.size,
        "created_at": _unix(record.created_at),
        "filename": record.filename,
        "purpose": record.purpose,
        "status": "processed",
        "status_details": None,
        "expires_at": None,
    }
