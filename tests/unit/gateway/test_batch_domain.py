"""The Batch API's pure parts: the lifecycle, request ids, the input file's checks, the output files."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from services.gateway.domain.batch_lines import (
    MAX_ERRORS,
    LineState,
    Outcome,
    answered,
    assemble,
    check_input,
    expired_error,
    parser,
)
from services.gateway.domain.batches import (
    BatchRecord,
    BatchStatus,
    Counts,
    batch_object,
    can_move,
    cancel_error,
    line_request_id,
    moved,
    parse_request_id,
    window_of,
)
from services.gateway.domain.catalogue import Catalogue, ModelSpec
from services.gateway.domain.errors import ApiError

S = BatchStatus
PARSE = parser(Catalogue({"echo": ModelSpec("echo")}), 16)
CHAT = "/v1/chat/completions"


def row(custom_id: str = "a", url: str = CHAT, **body: object) -> str:
    payload = {"model": "echo", "messages": [{"role": "user", "content": "hi"}]} | body
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": url, "body": payload})


@pytest.mark.parametrize(
    ("current", "to"),
    [
        (S.VALIDATING, S.IN_PROGRESS),
        (S.VALIDATING, S.FAILED),
        (S.IN_PROGRESS, S.FINALIZING),
        (S.FINALIZING, S.COMPLETED),
        (S.FINALIZING, S.EXPIRED),
        (S.IN_PROGRESS, S.CANCELLING),
        (S.CANCELLING, S.CANCELLED),
    ],
)
def test_the_lifecycle_allows_openais_transitions(current: BatchStatus, to: BatchStatus) -> None:
    assert can_move(current, to) and moved(current, to) is to


@pytest.mark.parametrize(
    ("current", "to"),
    [(S.COMPLETED, S.IN_PROGRESS), (S.FAILED, S.CANCELLING), (S.IN_PROGRESS, S.COMPLETED), (S.CANCELLED, S.COMPLETED)],
)
def test_the_lifecycle_refuses_anything_else(current: BatchStatus, to: BatchStatus) -> None:
    assert not can_move(current, to)
    with pytest.raises(ValueError, match="cannot go"):
        moved(current, to)


def test_only_a_running_batch_can_be_cancelled() -> None:
    assert cancel_error(S.IN_PROGRESS) is None and cancel_error(S.VALIDATING) is None
    assert cancel_error(S.CANCELLING) is None  # cancelling twice is not an error
    refused = cancel_error(S.COMPLETED)
    assert refused is not None and refused.status == 409


def test_a_lines_request_id_is_the_same_on_every_send_and_reads_back() -> None:
    assert line_request_id("batch_abc", 7) == line_request_id("batch_abc", 7) == "batch_abc-7"
    assert parse_request_id("batch_abc-7") == ("batch_abc", 7)
    assert parse_request_id("0f3e9a") is None and parse_request_id("batch_abc-x") is None


def test_only_the_24h_window_is_taken() -> None:
    assert window_of("24h") == timedelta(hours=24)
    with pytest.raises(ApiError) as refused:
        window_of("1h")
    assert refused.value.status == 400 and refused.value.param == "completion_window"


def test_a_valid_file_gives_its_lines_in_order() -> None:
    data = "\n".join([row("a"), "", row("b", max_tokens=3)]).encode()
    checked = check_input(data, CHAT, 10, PARSE)
    assert checked.errors == []
    assert [(ln.line_no, ln.custom_id) for ln in checked.lines] == [(1, "a"), (3, "b")]
    assert checked.lines[1].body["max_tokens"] == 3


def test_every_problem_of_an_invalid_file_is_listed_by_line_and_no_line_runs() -> None:
    lines = [
        row("a"),
        "{nope",
        row("b", url="/v1/embeddings"),
        json.dumps({"custom_id": "c", "method": "GET", "url": CHAT, "body": {}}),
        row("d", messages=[]),
        row("a"),
        row("e", model="gpt-nothing"),
        row("f", temperature=5),
    ]
    checked = check_input("\n".join(lines).encode(), CHAT, 100, PARSE)
    assert checked.lines == []
    found = {(e["line"], e["code"]) for e in checked.errors}
    assert {(2, "invalid_json_line"), (3, "invalid_url"), (4, "invalid_method"), (6, "duplicate_custom_id")} <= found
    assert (7, "model_not_found") in found
    assert {(e["line"], e["param"]) for e in checked.errors} >= {(5, "body.messages"), (8, "body.temperature")}


def test_a_line_must_use_the_batchs_endpoint() -> None:
    completion = json.dumps(
        {"custom_id": "a", "method": "POST", "url": "/v1/completions", "body": {"model": "echo", "prompt": "x"}}
    )
    assert check_input(completion.encode(), "/v1/completions", 5, PARSE).errors == []
    assert check_input(completion.encode(), CHAT, 5, PARSE).errors[0]["code"] == "invalid_url"


def test_too_many_lines_empty_files_and_non_utf8_are_refused() -> None:
    many = "\n".join(row(str(i)) for i in range(4)).encode()
    assert check_input(many, CHAT, 3, PARSE).errors[0]["code"] == "too_many_requests"
    assert check_input(many, CHAT, 4, PARSE).errors == []
    assert check_input(b"\n\n", CHAT, 3, PARSE).errors[0]["code"] == "empty_file"
    assert check_input(b"\xff\xfe", CHAT, 3, PARSE).errors[0]["message"] == "The file is not UTF-8"


def test_a_file_with_many_problems_lists_the_first_and_counts_the_rest() -> None:
    checked = check_input("\n".join(["{"] * (MAX_ERRORS + 7)).encode(), CHAT, 1000, PARSE)
    assert len(checked.errors) == MAX_ERRORS
    assert checked.errors[-1]["message"].endswith("(and 7 more problems)")


def test_output_and_error_files_hold_one_line_per_answered_custom_id_in_input_order() -> None:
    outcomes = [
        Outcome(3, "c", "batch_x-3", LineState.FAILED, None, expired_error()),
        Outcome(1, "a", "batch_x-1", LineState.DONE, answered("batch_x-1", {"ok": 1}), None, 5, 2),
        Outcome(2, "b", "batch_x-2", LineState.DONE, answered("batch_x-2", {"ok": 2}), None, 4, 3),
        Outcome(4, "d", "batch_x-4", LineState.CANCELLED),
    ]
    assembled = assemble("batch_x", 4, outcomes)
    assert assembled.output is not None and assembled.errors is not None
    out = [json.loads(line) for line in assembled.output.decode().splitlines()]
    assert [o["custom_id"] for o in out] == ["a", "b"]
    assert out[0] == {
        "id": "batch_req_x_1",
        "custom_id": "a",
        "response": {"status_code": 200, "request_id": "batch_x-1", "body": {"ok": 1}},
        "error": None,
    }
    errors = [json.loads(line) for line in assembled.errors.decode().splitlines()]
    assert errors == [{"id": "batch_req_x_3", "custom_id": "c", "response": None, "error": expired_error()}]
    assert assembled.counts == Counts(4, 2, 1)
    assert (assembled.usage.input_tokens, assembled.usage.output_tokens) == (9, 5)


def test_no_answered_lines_means_no_output_file() -> None:
    assembled = assemble("batch_x", 1, [Outcome(1, "a", "r", LineState.CANCELLED)])
    assert assembled.output is None and assembled.errors is None and assembled.counts == Counts(1, 0, 0)


def test_the_batch_object_has_openais_shape_with_unix_timestamps() -> None:
    created = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    record = BatchRecord(
        "batch_1", "t", "k", CHAT, "file-1", "24h", S.IN_PROGRESS, created, created + timedelta(hours=24),
        times={"in_progress_at": created + timedelta(seconds=2)}, counts=Counts(10, 4, 1),
    )  # fmt: skip
    body = batch_object(record)
    assert body["object"] == "batch" and body["status"] == "in_progress" and body["errors"] is None
    assert body["created_at"] == int(created.timestamp()) and body["in_progress_at"] == body["created_at"] + 2
    assert body["expires_at"] == body["created_at"] + 86400 and body["completed_at"] is None
    assert body["request_counts"] == {"total": 10, "completed": 4, "failed": 1}
    assert body["output_file_id"] is None and body["usage"]["total_tokens"] == 0
