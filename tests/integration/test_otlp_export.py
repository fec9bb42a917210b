"""Spans reach a collector over OTLP/gRPC and OTLP/HTTP, chosen by the standard environment variables.

Each test runs a real OTLP receiver on 127.0.0.1 (a gRPC TraceService, or an HTTP endpoint taking
protobuf at /v1/traces) and a tracer provider built the way every service builds its own.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from shared.telemetry import create_tracer_provider

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def names_and_services(requests: list[trace_service_pb2.ExportTraceServiceRequest]) -> set[tuple[str, str]]:
    """(span name, service.name) of every span received."""
    seen = set()
    for request in requests:
        for resource_spans in request.resource_spans:
            attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope in resource_spans.scope_spans:
                seen |= {(span.name, attributes["service.name"]) for span in scope.spans}
    return seen


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.requests: list[trace_service_pb2.ExportTraceServiceRequest] = []

    def Export(self, request, context):
        self.requests.append(request)
        return trace_service_pb2.ExportTraceServiceResponse()


@pytest.fixture
def grpc_receiver() -> Iterator[tuple[str, Receiver]]:
    receiver = Receiver()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"http://127.0.0.1:{port}", receiver
    server.stop(None)


@pytest.fixture
def http_receiver() -> Iterator[tuple[str, list]]:
    requests: list = []

    class Receive(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            if self.path == "/v1/traces" and self.headers.get("content-type") == "application/x-protobuf":
                request = trace_service_pb2.ExportTraceServiceRequest()
                request.ParseFromString(body)
                requests.append(request)
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.end_headers()
            self.wfile.write(trace_service_pb2.ExportTraceServiceResponse().SerializeToString())

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receive)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", requests
    server.shutdown()
    server.server_close()


def test_spans_go_out_over_grpc_when_the_protocol_says_so(grpc_receiver, monkeypatch) -> None:
    endpoint, receiver = grpc_receiver
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "router-grpc-test")
    monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    provider = create_tracer_provider("router")
    with provider.get_tracer("test").start_as_current_span("dispatch"):
        pass
    assert provider.force_flush(10_000)
    provider.shutdown()
    assert ("dispatch", "router-grpc-test") in names_and_services(receiver.requests)


def test_spans_go_out_over_http_protobuf_by_default(http_receiver, monkeypatch) -> None:
    endpoint, requests = http_receiver
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_PROTOCOL", raising=False)
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    provider = create_tracer_provider("scaler")
    with provider.get_tracer("test").start_as_current_span("scaler.evaluate"):
        pass
    assert provider.force_flush(10_000)
    provider.shutdown()
    assert ("scaler.evaluate", "llmfleet-scaler") in names_and_services(requests)


def test_nothing_goes_out_when_the_exporter_is_none(http_receiver, monkeypatch) -> None:
    endpoint, requests = http_receiver
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    provider = create_tracer_provider("scaler")
    with provider.get_tracer("test").start_as_current_span("scaler.evaluate"):
        pass
    provider.force_flush(2_000)
    provider.shutdown()
    assert requests == []
