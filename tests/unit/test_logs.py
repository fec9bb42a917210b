"""Logs are text by default, JSON with the current trace's ids when LLMFLEET_LOG_FORMAT=json."""

from __future__ import annotations

import io
import json
import logging

import pytest
from opentelemetry.sdk.trace import TracerProvider

from shared.logs import TEXT_FORMAT, TraceIds, configure_logging, json_formatter, log_format


def logger_into(stream: io.StringIO, formatter: logging.Formatter) -> logging.Logger:
    handler = logging.StreamHandler(stream)
    handler.addFilter(TraceIds())
    handler.setFormatter(formatter)
    logger = logging.getLogger(f"test-logs-{id(stream)}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger


def test_a_json_line_carries_the_trace_and_span_of_the_current_span() -> None:
    stream = io.StringIO()
    logger = logger_into(stream, json_formatter())
    with TracerProvider().get_tracer("test").start_as_current_span("handle") as span:
        logger.warning("batch of %s failed", "echo", extra={"server_id": "s-1"})
    line = json.loads(stream.getvalue())
    context = span.get_span_context()
    assert line["trace_id"] == format(context.trace_id, "032x")
    assert line["span_id"] == format(context.span_id, "016x")
    assert (line["level"], line["message"], line["server_id"]) == ("WARNING", "batch of echo failed", "s-1")
    assert line["logger"] == logger.name and "time" in line


def test_a_json_line_outside_a_trace_has_no_ids_and_keeps_the_traceback() -> None:
    stream = io.StringIO()
    logger = logger_into(stream, json_formatter())
    try:
        raise ValueError("bad row")
    except ValueError:
        logger.exception("relay round failed")
    line = json.loads(stream.getvalue())
    assert "trace_id" not in line and "span_id" not in line
    assert "ValueError: bad row" in line["exc_info"]


def test_text_lines_stay_as_they_were() -> None:
    stream = io.StringIO()
    logger = logger_into(stream, logging.Formatter(TEXT_FORMAT))
    with TracerProvider().get_tracer("test").start_as_current_span("handle"):
        logger.info("started")
    assert stream.getvalue().rstrip().endswith(f"INFO {logger.name}: started")


@pytest.mark.parametrize(
    ("value", "expected"), [(None, "text"), ("json", "json"), (" JSON ", "json"), ("text", "text"), ("yaml", "text")]
)
def test_the_format_is_chosen_by_llmfleet_log_format(value: str | None, expected: str) -> None:
    environ = {} if value is None else {"LLMFLEET_LOG_FORMAT": value}
    assert log_format(environ) == expected


def test_configure_logging_installs_the_chosen_format_on_the_root_logger(monkeypatch: pytest.MonkeyPatch) -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    monkeypatch.setenv("LLMFLEET_LOG_FORMAT", "json")
    try:
        configure_logging()
        (handler,) = root.handlers
        assert any(isinstance(f, TraceIds) for f in handler.filters)
        assert handler.formatter is not None and type(handler.formatter).__name__ == "JsonFormatter"
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
