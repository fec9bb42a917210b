"""A batch's lines: the input file checked line by line, results as output lines, the files assembled (pure)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from services.gateway.domain.batches import ENDPOINTS, Counts, Usage
from services.gateway.domain.catalogue import Catalogue
from services.gateway.domain.errors import ApiError, model_not_found
from services.gateway.domain.requests import Ask, parse_chat, parse_completion

MAX_ERRORS = 100  # an invalid file lists this many problems; the rest are counted in the last one
MAX_CUSTOM_ID = 512

Parse = Callable[[str, object], Ask]  # (url, body) -> Ask, or the ApiError the endpoint would answer


def parser(catalogue: Catalogue, default_max_tokens: int) -> Parse:
    """A batch line's body parsed as its endpoint parses it, for a model the gateway serves."""

    def parse(url: str, body: object) -> Ask:
        if url == "/v1/chat/completions":
            model = str(body.get("model", "")) if isinstance(body, dict) else ""
            ask = parse_chat(body, catalogue.template(model), default_max_tokens)
        else:
            ask = parse_completion(body, default_max_tokens)
        if not catalogue.knows(ask.model):
            raise model_not_found(ask.model)
        return ask

    return parse


class LineState(StrEnum):
    """Where a line is: to send, sent (its result awaited), answered (done / failed), or dropped."""

    PENDING = "pending"
    SENT = "sent"
    DONE = "done"
    FAILED = "failed"  # in the error file: the fleet refused it, or it expired
    CANCELLED = "cancelled"  # never ran (the batch was cancelled): in neither file


@dataclass(frozen=True)
class InputLine:
    """One valid request of the input file."""

    line_no: int
    custom_id: str
    body: dict[str, Any]


@dataclass(frozen=True)
class Checked:
    """The input file's requests, or what is wrong with it (then none run)."""

    lines: list[InputLine]
    errors: list[dict[str, Any]]


def check_input(data: bytes, endpoint: str, max_lines: int, parse: Parse) -> Checked:
    """Every line of the JSONL input: `{custom_id, method: POST, url: <endpoint>, body}`, body valid, ids unique."""
    errors: list[dict[str, Any]] = []
    lines: list[InputLine] = []
    seen: set[str] = set()
    problems = 0

    def problem(code: str, message: str, line: int | None, param: str | None = None) -> None:
        nonlocal problems
        problems += 1
        if len(errors) < MAX_ERRORS:
            errors.append({"code": code, "message": message, "param": param, "line": line})

    try:
        text = data.decode()
    except UnicodeDecodeError:
        return Checked(
            [], [{"code": "invalid_json_line", "message": "The file is not UTF-8", "param": None, "line": None}]
        )
    numbered = [(n, raw) for n, raw in enumerate(text.splitlines(), start=1) if raw.strip()]
    if not numbered:
        problem("empty_file", "The input file holds no requests", None)
    if len(numbered) > max_lines:
        problem("too_many_requests", f"A batch holds at most {max_lines} requests; this file has {len(numbered)}", None)
        numbered = []
    for number, raw in numbered:
        entry = _check_line(raw, number, endpoint, parse, problem)
        if entry is None:
            continue
        if entry.custom_id in seen:
            problem("duplicate_custom_id", f"custom_id '{entry.custom_id}' is used more than once", number, "custom_id")
            continue
        seen.add(entry.custom_id)
        lines.append(entry)
    if problems > len(errors):
        errors[-1] = errors[-1] | {"message": errors[-1]["message"] + f" (and {problems - len(errors)} more problems)"}
    return Checked([] if errors else lines, errors)


def _check_line(
    raw: str, number: int, endpoint: str, parse: Parse, problem: Callable[[str, str, int | None, str | None], None]
) -> InputLine | None:
    """One line as an InputLine, or None after reporting what is wrong with it."""
    try:
        entry = json.loads(raw)
    except ValueError:
        problem("invalid_json_line", "This line is not parseable as valid JSON", number, None)
        return None
    if not isinstance(entry, dict):
        problem("invalid_json_line", "Each line must be a JSON object", number, None)
        return None
    custom_id, url, body = entry.get("custom_id"), entry.get("url"), entry.get("body")
    if not isinstance(custom_id, str) or not custom_id or len(custom_id) > MAX_CUSTOM_ID:
        problem(
            "missing_required_parameter", f"custom_id must be a string of 1-{MAX_CUSTOM_ID} chars", number, "custom_id"
        )
        return None
    if entry.get("method") != "POST":
        problem("invalid_method", "method must be POST", number, "method")
        return None
    if url not in ENDPOINTS or url != endpoint:
        problem("invalid_url", f"url must be the batch's endpoint {endpoint}", number, "url")
        return None
    if not isinstance(body, dict):
        problem("invalid_request", "body must be a JSON object", number, "body")
        return None
    try:
        parse(url, body)
    except ApiError as error:
        problem(error.code or "invalid_request", error.message, number, error.param and f"body.{error.param}")
        return None
    return InputLine(number, custom_id, body)


@dataclass(frozen=True)
class Outcome:
    """A line's result as stored: its state, the response (status and body) and/or an error."""

    line_no: int
    custom_id: str
    request_id: str
    state: LineState
    response: dict[str, Any] | None = None  # {"status_code", "body"}
    error: dict[str, Any] | None = None  # {"code", "message"}: no response (expired, no result)
    tokens_in: int = 0
    tokens_out: int = 0


def answered(request_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """The stored response of a line the fleet answered."""
    return {"status_code": 200, "request_id": request_id, "body": body}


def refused(request_id: str, error: ApiError) -> dict[str, Any]:
    """The stored response of a line the fleet refused: the error the endpoint would have answered."""
    return {"status_code": error.status, "request_id": request_id, "body": error.body()}


def expired_error() -> dict[str, str]:
    """The error of a line the completion window closed on."""
    return {
        "code": "batch_expired",
        "message": "This request could not be executed before the completion window expired.",
    }


def _line(batch_id: str, outcome: Outcome) -> str:
    return json.dumps(
        {
            "id": f"batch_req_{batch_id.removeprefix('batch_')}_{outcome.line_no}",
            "custom_id": outcome.custom_id,
            "response": outcome.response,
            "error": outcome.error,
        },
        separators=(",", ":"),
    )


@dataclass(frozen=True)
class Assembled:
    """The output and error files' bytes (None: no such file), the counts and the usage."""

    output: bytes | None
    errors: bytes | None
    counts: Counts
    usage: Usage


def assemble(batch_id: str, total: int, outcomes: Iterable[Outcome]) -> Assembled:
    """Output file (answered lines) and error file (refused, expired), in input order; cancelled lines in neither."""
    ordered = sorted(outcomes, key=lambda o: o.line_no)
    done = [o for o in ordered if o.state is LineState.DONE]
    failed = [o for o in ordered if o.state is LineState.FAILED]
    usage = Usage(sum(o.tokens_in for o in done), sum(o.tokens_out for o in done))
    return Assembled(
        ("\n".join(_line(batch_id, o) for o in done) + "\n").encode() if done else None,
        ("\n".join(_line(batch_id, o) for o in failed) + "\n").encode() if failed else None,
        Counts(total, len(done), len(failed)),
        usage,
    )
