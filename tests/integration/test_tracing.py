"""One saga over Kafka, traced with OpenTelemetry's in-memory exporter: one trace id (the
saga's) across all its spans, and in the `traceparent` header of every command it sent.

The orchestrator runs in this process (so its spans reach the exporter), the simulated
participants in another, over a real Kafka-protocol broker."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest
from dependency_injector import providers
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from tests.support.browser import served
from tests.support.kafka import event_envelope, new_setup
from tests.support.scenarios import SEED_ORDER, start_order
from tests.support.servers import saga_background, wait_for_status

from saga.domain.messages import Participant
from saga.entrypoints.config import Settings
from saga.entrypoints.container import Container
from saga.ports.trace_context import parse_traceparent
from saga.service_layer.tracing import Tracing

pytestmark = pytest.mark.kafka

SIMULATOR_READY = "simulator ready"


def test_one_saga_is_one_trace_across_its_spans_and_its_commands_headers(kafka_bootstrap: str, tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    setup = new_setup(kafka_bootstrap)
    env = setup.env(f"sqlite:///{tmp_path / 'saga.db'}")
    container = Container(settings=Settings.from_env(env))
    container.tracing.override(providers.Object(Tracing(provider)))

    with (
        served(container) as base,
        saga_background(setup.simulator_args(), env, tmp_path / "simulator.log", SIMULATOR_READY),
    ):
        saga_id = start_order(base, SEED_ORDER)
        saga = wait_for_status(base, saga_id, {"COMPLETED", "FAILED", "COMPENSATION_FAILED"}, timeout=60)
        assert saga["status"] == "COMPLETED", saga
        # A late event from a participant with a trace of its own: linked, not adopted.
        foreign_trace = uuid.uuid4().int
        producer = setup.producer()
        try:
            producer.send(
                setup.topic("timer_events"),
                event_envelope("timer.started", saga_id, {"timer_id": "late"}),
                headers=[("traceparent", f"00-{foreign_trace:032x}-{0xABC:016x}-01".encode())],
            ).get(10)  # type: ignore[no-untyped-call]  # the stubs leave get() untyped
        finally:
            producer.close()
        commands = [
            record
            for participant in Participant
            for record in setup.read_all(
                setup.topic(f"{participant.value}_commands"), 1 if participant is not Participant.ORDER else 2
            )
        ]
        deadline = time.monotonic() + 20
        while not any(span.links for span in exporter.get_finished_spans()) and time.monotonic() < deadline:
            time.sleep(0.05)

    trace_id = uuid.UUID(saga_id).int
    assert len(commands) == 5
    for record in commands:
        headers = dict(record.headers)
        parsed = parse_traceparent(headers["traceparent"].decode())
        assert parsed is not None and parsed[0] == trace_id, headers
        assert json.loads(record.value)["correlation_id"] == saga_id

    spans = [span for span in exporter.get_finished_spans() if (span.attributes or {}).get("saga.id") == saga_id]
    names = [span.name for span in spans]
    assert names.count("saga.start") == 1
    assert names.count("saga.send") == 5
    assert names.count("saga.apply_event") >= 6  # five replies and the foreign one
    assert {span.context.trace_id for span in spans} == {trace_id}
    linked = [span for span in spans if span.links]
    assert linked and all(link.context.trace_id == foreign_trace for span in linked for link in span.links)
