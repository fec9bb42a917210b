"""Process logging: plain text, or one JSON object a line with the current trace's ids (`LLMFLEET_LOG_FORMAT`).

`LLMFLEET_LOG_FORMAT=json` is for log collectors (Compose, Kubernetes): each line is an object
with `time`, `level`, `logger`, `message`, the exception's traceback as `exc_info`, any `extra=`
fields, and `trace_id` / `span_id` (hex, as trace back-ends show them) when the line was logged
inside a span, so a log line leads to its trace and back. `text` (the default) keeps the
readable lines a developer tails under `make demo`; they carry no ids.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Literal

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s"
LogFormat = Literal["text", "json"]


class TraceIds(logging.Filter):
    """Adds `trace_id` and `span_id` of the span current when the record was made (absent outside a trace)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Annotate the record; never drops it."""
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            record.trace_id = format(context.trace_id, "032x")
            record.span_id = format(context.span_id, "016x")
        return True


def json_formatter() -> logging.Formatter:
    """One JSON object a line: time, level, logger, message, extras, trace and span ids."""
    return JsonFormatter(
        JSON_FIELDS,
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        datefmt="%Y-%m-%dT%H:%M:%S%z",
    )


def log_format(environ: dict[str, str] | None = None) -> LogFormat:
    """`LLMFLEET_LOG_FORMAT` (json or text, case-insensitive); text when unset or unknown."""
    raw = (environ if environ is not None else os.environ).get("LLMFLEET_LOG_FORMAT", "text").strip().lower()
    return "json" if raw == "json" else "text"


def configure_logging(level: int = logging.INFO, fmt: LogFormat | None = None) -> None:
    """Set up the root logger once per process in the chosen format (replacing handlers set before)."""
    chosen = fmt or log_format()
    handler = logging.StreamHandler(sys.stderr)
    # On the handler, not a logger: records from every library's logger pass it.
    handler.addFilter(TraceIds())
    handler.setFormatter(json_formatter() if chosen == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    asked = os.environ.get("LLMFLEET_LOG_FORMAT", "text")
    if asked.strip().lower() not in ("json", "text"):
        logging.getLogger(__name__).warning("LLMFLEET_LOG_FORMAT=%r unknown; logging text", asked)
