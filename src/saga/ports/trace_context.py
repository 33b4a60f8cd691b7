"""W3C trace context of a saga: one trace per saga, its id the saga's id.

A saga runs in many processes over minutes; rather than store a trace context with it,
its trace id is its UUID (both are 128 bits), so every process that touches the saga
puts its spans in the same trace. Each command carries a `traceparent` (W3C Trace
Context, https://www.w3.org/TR/trace-context/) whose parent id is taken from the
command's message_id, so a participant's spans join the saga's trace. Pure functions:
the adapters write the header, the service layer starts spans under it.
"""

from __future__ import annotations

import re
import uuid

TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")


def saga_trace_id(saga_id: str) -> int:
    """The saga's trace id (128 bits): its UUID. Raises ValueError for an id that is no UUID."""
    return uuid.UUID(saga_id).int


def span_id_of(message_id: str) -> int:
    """A span id (64 bits, never 0) taken from a message id: its UUID's first half, or a hash."""
    try:
        value = uuid.UUID(message_id).int >> 64
    except ValueError:
        value = int.from_bytes(uuid.uuid5(uuid.NAMESPACE_URL, message_id).bytes[:8], "big")
    return value or 1


def traceparent(saga_id: str, message_id: str) -> str | None:
    """The `traceparent` of a command of saga `saga_id`; None when the saga id is no UUID."""
    try:
        trace_id = saga_trace_id(saga_id)
    except ValueError:
        return None
    return f"00-{trace_id:032x}-{span_id_of(message_id):016x}-01"


def parse_traceparent(value: str) -> tuple[int, int] | None:
    """(trace id, parent span id) of a version-00 `traceparent`; None when it is not one."""
    match = TRACEPARENT.fullmatch(value.strip().lower())
    if match is None:
        return None
    trace_id, span_id = int(match[1], 16), int(match[2], 16)
    return (trace_id, span_id) if trace_id and span_id else None


def trace_headers(saga_id: str, message_id: str) -> dict[str, str]:
    """The headers a command carries on any transport: `{"traceparent": ...}`, or none."""
    value = traceparent(saga_id, message_id)
    return {} if value is None else {"traceparent": value}
