"""The event receiver: every transport hands it participants' event messages.

Raw bytes become an applied event, or a clear verdict why not (a bad message, or
one naming no saga), which the transport turns into its own answer: an HTTP status,
a dead letter.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from saga.domain.messages import BadMessage, Event
from saga.service_layer.log_context import log_context
from saga.service_layer.metrics import Metrics
from saga.service_layer.orchestrator import EventOutcome, SagaOrchestrator

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Receipt:
    outcome: EventOutcome | None
    """What applying did; None when the message was bad."""
    problem: str | None = None
    """Why the message was rejected: bad, or naming no saga."""


class EventReceiver:
    def __init__(
        self, orchestrator: SagaOrchestrator, metrics: Metrics, decode: Callable[[bytes | str], Event]
    ) -> None:
        self._orchestrator = orchestrator
        self._metrics = metrics
        self._decode = decode
        """The wire format: raw bytes to an Event, raising BadMessage saying why."""

    def receive(self, raw: bytes | str, source: str = "") -> Receipt:
        try:
            event = self._decode(raw)
        except BadMessage as bad:
            self._metrics.event("", "bad")  # its type could not be read
            log.warning("bad event%s: %s", f" from {source}" if source else "", bad)
            return Receipt(None, str(bad))
        return self.apply(event, source)

    def apply(self, event: Event, source: str = "") -> Receipt:
        with log_context(saga_id=event.saga_id, message_id=event.message_id):
            outcome = self._orchestrator.apply_event(event)
            if outcome is EventOutcome.UNKNOWN_SAGA:
                where = f" from {source}" if source else ""
                log.warning("event %s%s names no saga: %s", event.type, where, event.saga_id)
                return Receipt(outcome, f"no saga {event.saga_id}")
        return Receipt(outcome)
