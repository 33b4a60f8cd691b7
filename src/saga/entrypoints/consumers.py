"""Event consumers: loops that take participants' events off a transport to the event receiver.

The background worker runs each consumer in its own thread until told to stop. The
Kafka one lives in `kafka_events`; HTTP needs none (events arrive as synchronous
replies and through `POST /api/events`).
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Protocol, runtime_checkable

from saga.adapters.memory_transport import InMemoryTransport
from saga.service_layer.receiver import EventReceiver


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
                self._receiver.receive(raw, "memory")

    def drain(self) -> int:
        """Applies every queued event without waiting; returns how many."""
        handled = 0
        while (raw := self._transport.next_event()) is not None:
            self._receiver.receive(raw, "memory")
            handled += 1
        return handled
