"""W3C trace context: one trace per saga (its id), the `traceparent` every command carries over
HTTP, and tracing switched on by the standard OTEL_* variables."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from saga.adapters.http_publisher import HttpCommandPublisher
from saga.domain.messages import Command, Participant
from saga.entrypoints.otel import configure_tracing
from saga.ports.trace_context import parse_traceparent, span_id_of, trace_headers, traceparent
from saga.service_layer.log_context import current, log_context
from saga.service_layer.tracing import Tracing, incoming_traceparent


def test_a_sagas_trace_id_is_its_id_and_each_command_has_its_own_parent_span() -> None:
    saga_id, first, second = (str(uuid.uuid4()) for _ in range(3))
    one, two = traceparent(saga_id, first), traceparent(saga_id, second)
    assert one is not None and two is not None
    assert one == f"00-{uuid.UUID(saga_id).hex}-{uuid.UUID(first).hex[:16]}-01"
    assert parse_traceparent(one) == (uuid.UUID(saga_id).int, span_id_of(first))
    assert parse_traceparent(two)[0] == parse_traceparent(one)[0]  # type: ignore[index]
    assert traceparent("not-a-uuid", first) is None and trace_headers("not-a-uuid", first) == {}
    assert span_id_of("not-a-uuid") != 0


@pytest.mark.parametrize(
    "value", ["", "00-0-0-01", f"00-{'0' * 32}-{'1' * 16}-01", f"01-{'a' * 32}-{'b' * 16}", "garbage"]
)
def test_a_traceparent_that_is_not_one_is_ignored(value: str) -> None:
    assert parse_traceparent(value) is None


@pytest.fixture
def received_headers() -> Iterator[tuple[str, list[dict[str, str]]]]:
    seen: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            seen.append(dict(self.headers.items()))
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_every_command_sent_over_http_carries_its_traceparent(
    received_headers: tuple[str, list[dict[str, str]]],
) -> None:
    url, seen = received_headers
    publisher = HttpCommandPublisher({participant: url for participant in Participant})
    saga_id = str(uuid.uuid4())
    commands = [
        Command(kind, saga_id, {"saga_id": saga_id}, str(uuid.uuid4()), datetime.now(UTC))
        for kind in ("create_order", "get_payment_info", "authorize_payment")
    ]
    try:
        publisher.publish(commands)
    finally:
        publisher.close()
    sent = sorted(headers["traceparent"] for headers in seen)
    assert sent == sorted(traceparent(saga_id, command.message_id) or "" for command in commands)


def test_a_use_case_span_joins_the_sagas_trace_links_a_foreign_parent_and_logs_the_trace_id() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing = Tracing(provider)
    saga_id, foreign = str(uuid.uuid4()), uuid.uuid4().int
    with (
        log_context(saga_id=saga_id),
        incoming_traceparent(f"00-{foreign:032x}-{7:016x}-01"),
        tracing.use_case("saga.apply_event", saga_id, "m-1"),
    ):
        assert current()["trace_id"] == uuid.UUID(saga_id).hex
    with tracing.use_case("saga.deadline", "not-a-uuid"):
        pass  # no trace to join: no span, no error
    [span] = exporter.get_finished_spans()
    assert span.name == "saga.apply_event" and span.context.trace_id == uuid.UUID(saga_id).int
    assert span.attributes is not None and span.attributes["messaging.message.id"] == "m-1"
    assert [link.context.trace_id for link in span.links] == [foreign]


def test_tracing_is_off_unless_an_otel_exporter_or_endpoint_is_set() -> None:
    assert configure_tracing({}) is False
    assert configure_tracing({"OTEL_TRACES_EXPORTER": "none"}) is False
    assert configure_tracing({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}) is False
    assert configure_tracing({"OTEL_TRACES_EXPORTER": "zipkin-please"}) is False
