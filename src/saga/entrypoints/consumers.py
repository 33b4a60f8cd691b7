"""Event consumers: loops that take participants' events off a transport to the event receiver.

The background worker runs each consumer in its own thread until told to stop. The
Kafka one lives in `kafka_events`; HTTP needs none (events arrive as synchronous
replies and through `POST /api/events`).
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Protocol, runtime_checkable

from saga.adapters.memory_transport import InMemoryTransport
from saga.service_layer.receiver import EventReceiver, Incoming

log = logging.getLogger(__name__)

MEMORY_BATCH = 100
"""Events queued together that the in-memory consumer applies in one unit of work."""


class EventConsumer(Protocol):
    """Feeds events from a transport to the receiver until `stop` is set."""

    def run(self, stop: threading.Event) -> None: ...


@runtime_checkable
class GroupConsumer(Protocol):
    """An EventConsumer that shares its transport's partitions with other processes (Kafka)."""

    def readiness(self) -> str | None:
        """None while it is a member of a stable group (partitions or not), else what it waits for."""

    def caught_up_at(self) -> datetime | None:
        """When (UTC) it had last read everything it was given; None before it ever had."""


class MemoryEventConsumer:
    """Takes the in-memory transport's queued replies to the receiver."""

    def __init__(self, transport: InMemoryTransport, receiver: EventReceiver) -> None:
        self._transport = transport
        self._receiver = receiver

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            raw = self._transport.next_event(timeout=0.2)
            if raw is not None:
                self._apply([raw, *self._queued(MEMORY_BATCH - 1)])

    def drain(self) -> int:
        """Applies every queued event without waiting; returns how many."""
        handled = 0
        while batch := self._queued(MEMORY_BATCH):
            self._apply(batch)
            handled += len(batch)
        return handled

    def _queued(self, limit: int) -> list[bytes]:
        """Up to `limit` events already queued, oldest first, without waiting."""
        taken: list[bytes] = []
        while len(taken) < limit and (raw := self._transport.next_event()) is not None:
            taken.append(raw)
        return taken

    def _apply(self, batch: list[bytes]) -> None:
        """Applies what was queued together in one unit of work; when that fails, one at a time."""
        if len(batch) > 1:
            try:
                self._receiver.receive_many([Incoming(raw, "memory") for raw in batch])
                return
            except Exception as error:
                log.warning("a batch of %d events failed (%r); applying them one at a time", len(batch), error)
        for raw in batch:
            self._receiver.receive(raw, "memory")
