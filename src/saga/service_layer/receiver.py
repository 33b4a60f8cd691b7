"""The event receiver: every transport hands it participants' event messages.

Raw bytes become an applied event, or a clear verdict why not (a bad message, or
one naming no saga), which the transport turns into its own answer: an HTTP status,
a dead letter.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from saga.domain.messages import BadMessage, Event
from saga.ports.persistence import PersistenceError
from saga.service_layer.group_commit import DEFAULT_MAX_BATCH, GroupCommit
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


@dataclass(frozen=True)
class Incoming:
    """One message as a transport took it in, for a batch."""

    raw: bytes | str
    source: str = ""
    """Where it came from, as logs and dead letters name it (`topic/partition@offset`)."""
    traceparent: str | None = None
    """The W3C trace context it carried, if any."""


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
            return self._bad(bad, source)
        return self.apply(event, source)

    def receive_many(self, messages: Sequence[Incoming]) -> list[Receipt]:
        """Decodes messages and applies the good ones as one batch, in order (one unit of
        work: `SagaOrchestrator.apply_events`); returns a receipt for each, in order.

        Raises what `apply_events` raises (StorageUnavailable, or an unexpected error):
        nothing of the batch was applied then.
        """
        receipts: list[Receipt | None] = []
        events: list[Event] = []
        positions: list[int] = []
        for position, message in enumerate(messages):
            try:
                event = self._decode(message.raw)
            except BadMessage as bad:
                receipts.append(self._bad(bad, message.source))
                continue
            receipts.append(None)
            events.append(event)
            positions.append(position)
        traceparents = [messages[position].traceparent for position in positions]
        outcomes = self._orchestrator.apply_events(events, traceparents)
        for position, event, outcome in zip(positions, events, outcomes, strict=True):
            receipts[position] = self._receipt(event, outcome, messages[position].source)
        return [receipt for receipt in receipts if receipt is not None]

    def apply(self, event: Event, source: str = "") -> Receipt:
        with log_context(saga_id=event.saga_id, message_id=event.message_id):
            return self._receipt(event, self._orchestrator.apply_event(event), source)

    def _bad(self, bad: BadMessage, source: str) -> Receipt:
        self._metrics.event("", "bad")  # its type could not be read
        log.warning("bad event%s: %s", f" from {source}" if source else "", bad)
        return Receipt(None, str(bad))

    @staticmethod
    def _receipt(event: Event, outcome: EventOutcome, source: str) -> Receipt:
        if outcome is EventOutcome.UNKNOWN_SAGA:
            where = f" from {source}" if source else ""
            with log_context(saga_id=event.saga_id, message_id=event.message_id):
                log.warning("event %s%s names no saga: %s", event.type, where, event.saga_id)
            return Receipt(outcome, f"no saga {event.saga_id}")
        return Receipt(outcome)


class _BrokenBatch(Exception):
    """Applying a batch failed on something other than the database: one of its messages,
    which one is not known."""


class GroupedReceiver:
    """Messages that arrive one per request (`POST /api/events`) and at the same time are
    applied together, as one batch of `EventReceiver.receive_many` (group commit,
    `saga.service_layer.group_commit`); each request gets its own message's receipt.

    A database failure (PersistenceError) goes to every request of its batch: nothing of
    it was applied. Any other failure applies the batch's messages again one per batch,
    so it reaches only the request whose message caused it.
    """

    def __init__(self, receiver: EventReceiver, max_batch: int = DEFAULT_MAX_BATCH) -> None:
        self._receiver = receiver
        self._group: GroupCommit[Incoming, Receipt] = GroupCommit(
            self._receive_many, split_on=(_BrokenBatch,), max_batch=max_batch
        )

    def receive(self, raw: bytes | str, source: str = "", traceparent: str | None = None) -> Receipt:
        """`EventReceiver.receive`, with whatever other messages arrive meanwhile. Raises
        PersistenceError (nothing of its batch was applied), or what applying its message raised."""
        try:
            return self._group.submit(Incoming(raw, source, traceparent))
        except _BrokenBatch as broken:
            cause = broken.__cause__
            if cause is None:
                raise
            raise cause from cause.__cause__  # what applying the message raised, as it raised it

    def _receive_many(self, messages: Sequence[Incoming]) -> list[Receipt]:
        try:
            return self._receiver.receive_many(messages)
        except PersistenceError:
            raise
        except Exception as error:
            raise _BrokenBatch(str(error)) from error
