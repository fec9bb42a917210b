"""Triton's own OpenTelemetry tracing, turned on by the same environment as the services' tracing.

Triton 2.51 exports its request spans (HTTP handler, compute) over OTLP/HTTP only, and continues
the W3C `traceparent` that the router's `triton infer` span sends, so a request's trace shows
what happened inside Triton under the router's call. The options are passed when traces are
exported at all (`OTEL_SDK_DISABLED` and `OTEL_TRACES_EXPORTER` as in `shared.telemetry`) and an
OTLP/HTTP URL is known, in this order:
- `LLMFLEET_TRITON_OTLP_URL`: the full URL (e.g. `http://collector:4318/v1/traces`);
- `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, used as it is, when the protocol is `http/protobuf`;
- `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/traces`, when the protocol is `http/protobuf`.
A gRPC-only endpoint (protocol `grpc`) cannot serve Triton: it then needs
`LLMFLEET_TRITON_OTLP_URL`. `LLMFLEET_TRITON_TRACE_RATE` samples one request in N (default 1:
every request, as the emulated servers are few and slow; a real fleet sets it higher).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

SERVICE_NAME = "llmfleet-triton"


def triton_otlp_url(environ: Mapping[str, str] | None = None) -> str | None:
    """The OTLP/HTTP traces URL Triton should export to; None when tracing is off or no HTTP URL is known."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    exporters = [name.strip().lower() for name in env.get("OTEL_TRACES_EXPORTER", "").split(",") if name.strip()]
    if exporters and "otlp" not in exporters:
        return None
    if env.get("LLMFLEET_TRITON_OTLP_URL"):
        return env["LLMFLEET_TRITON_OTLP_URL"]
    protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
    if (protocol or "http/protobuf").strip().lower() != "http/protobuf":
        return None
    if env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        return env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]
    if env.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return env["OTEL_EXPORTER_OTLP_ENDPOINT"].rstrip("/") + "/v1/traces"
    return None


def trace_options(server_name: str, environ: Mapping[str, str] | None = None) -> list[str]:
    """`tritonserver` arguments that export its traces over OTLP (none when tracing is off)."""
    env = os.environ if environ is None else environ
    url = triton_otlp_url(env)
    if url is None:
        return []
    rate = int(env.get("LLMFLEET_TRITON_TRACE_RATE", "1"))
    return [
        "--trace-config=mode=opentelemetry",
        # TIMESTAMPS: the request, queue and compute spans (TENSORS would copy prompts into spans).
        "--trace-config=level=TIMESTAMPS",
        f"--trace-config=rate={rate}",
        f"--trace-config=opentelemetry,url={url}",
        f"--trace-config=opentelemetry,resource=service.name={SERVICE_NAME}",
        f"--trace-config=opentelemetry,resource=service.instance.id={server_name}",
    ]
