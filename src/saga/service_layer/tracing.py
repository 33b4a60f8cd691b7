"""Spans of the saga's use cases, with OpenTelemetry when it is installed (`pip install 'saga[otel]'`).

One trace per saga, from its POST to its end: the trace id is the saga's id
(`saga.ports.trace_context`), so the spans of every process that works on a saga land in
its trace without a stored context. Each use case is one span: `saga.start`,
`saga.apply_event`, `saga.deadline`, `saga.cancel`, `saga.retry`, and `saga.send` for
each command handed to the transport. An event that arrives with a `traceparent` of
another trace (a participant's) is linked to the span that applies it. Without
OpenTelemetry, or with no tracer provider configured, every method does nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from saga.domain.messages import Command
from saga.ports.trace_context import parse_traceparent, saga_trace_id, span_id_of
from saga.service_layer.log_context import bind

try:
    from opentelemetry import trace
    from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, TraceFlags, set_span_in_context
except ImportError:  # the optional extra is not installed
    trace = None  # type: ignore[assignment]

TRACER_NAME = "saga"
_incoming: ContextVar[str | None] = ContextVar("saga_incoming_traceparent", default=None)


@contextmanager
def incoming_traceparent(value: str | None) -> Iterator[None]:
    """The `traceparent` an event arrived with (a Kafka record header, an HTTP header), for
    the span that applies it."""
    token = _incoming.set(value)
    try:
        yield
    finally:
        _incoming.reset(token)


class Tracing:
    """Starts the use cases' spans. `tracer_provider` defaults to OpenTelemetry's global one."""

    def __init__(self, tracer_provider: Any = None) -> None:
        self._tracer = None if trace is None else trace.get_tracer(TRACER_NAME, tracer_provider=tracer_provider)

    @contextmanager
    def use_case(self, name: str, saga_id: str, message_id: str | None = None) -> Iterator[None]:
        """A span named `name` in saga `saga_id`'s trace around the block; `trace_id` joins the log context."""
        parent = self._saga_context(saga_id)
        if self._tracer is None or parent is None:
            yield
            return
        attributes = {"saga.id": saga_id}
        if message_id is not None:
            attributes["messaging.message.id"] = message_id
        links = []
        linked = parse_traceparent(_incoming.get() or "")
        if linked is not None and linked[0] != parent.trace_id:
            links.append(Link(SpanContext(linked[0], linked[1], True, TraceFlags(TraceFlags.SAMPLED))))
        with self._tracer.start_as_current_span(
            name, context=set_span_in_context(NonRecordingSpan(parent)), attributes=attributes, links=links
        ):
            bind(trace_id=f"{parent.trace_id:032x}")
            yield

    def sent(self, command: Command, started_ns: int, ended_ns: int, outcome: str) -> None:
        """Records the span of one command's hand-over to the transport (`saga.send`), whose
        id its `traceparent` header names as the parent of the participant's work."""
        parent = self._saga_context(command.saga_id)
        if self._tracer is None or parent is None:
            return
        span = self._tracer.start_span(
            "saga.send",
            context=set_span_in_context(NonRecordingSpan(parent)),
            kind=SpanKind.PRODUCER,
            start_time=started_ns,
            attributes={
                "saga.id": command.saga_id,
                "saga.command": command.type,
                "messaging.message.id": command.message_id,
                "saga.send.outcome": outcome,
            },
        )
        span.end(end_time=ended_ns)

    @staticmethod
    def _saga_context(saga_id: str) -> Any:
        if trace is None:
            return None
        try:
            trace_id = saga_trace_id(saga_id)
        except ValueError:
            return None
        return SpanContext(trace_id, span_id_of(saga_id), True, TraceFlags(TraceFlags.SAMPLED))
