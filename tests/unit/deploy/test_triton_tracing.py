"""The local Triton servers trace over OTLP/HTTP when the services export traces, and not otherwise."""

from __future__ import annotations

import pytest

from deploy.local.triton_tracing import trace_options, triton_otlp_url


@pytest.mark.parametrize(
    ("environ", "url"),
    [
        ({}, None),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4318"}, "http://jaeger:4318/v1/traces"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4318/"}, "http://jaeger:4318/v1/traces"),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, "http://c:4318/v1/traces"),
        # Triton speaks OTLP/HTTP only: a gRPC endpoint needs its own URL.
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, None),
        (
            {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "LLMFLEET_TRITON_OTLP_URL": "http://c:4318/v1/traces"},
            "http://c:4318/v1/traces",
        ),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}, None),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}, None),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "console"}, None),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "otlp,console"},
            "http://c:4318/v1/traces",
        ),
    ],
)
def test_the_url_follows_the_services_tracing_environment(environ: dict[str, str], url: str | None) -> None:
    assert triton_otlp_url(environ) == url


def test_the_options_name_the_server_and_sample_every_request_by_default() -> None:
    options = trace_options("gpu-3", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"})
    assert "--trace-config=mode=opentelemetry" in options
    assert "--trace-config=level=TIMESTAMPS" in options
    assert "--trace-config=rate=1" in options
    assert "--trace-config=opentelemetry,url=http://c:4318/v1/traces" in options
    assert "--trace-config=opentelemetry,resource=service.instance.id=gpu-3" in options
    assert trace_options("gpu-3", {}) == []
    rated = trace_options(
        "gpu-3", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "LLMFLEET_TRITON_TRACE_RATE": "100"}
    )
    assert "--trace-config=rate=100" in rated
