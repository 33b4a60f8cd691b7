"""The in-memory transport: commands go straight to in-process participants, whose
replies wait in a queue until the orchestrator takes them.

Replies travel as JSON bytes, as on a real broker, so they pass the same
validation as Kafka and HTTP events.
"""

from __future__ import annotations

import logging
import queue
from collections import deque
from collections.abc import Callable, Mapping, Sequence

from saga.adapters.envelope import command_envelope, encode_json
from saga.domain.messages import Command, JsonObject, Participant
from saga.ports.messaging import CommandPublisher, Delivered, SendResult, Undelivered

log = logging.getLogger(__name__)

CommandHandler = Callable[[JsonObject], "JsonObject | Sequence[JsonObject] | None"]
"""A participant: takes a command envelope, returns its reply event envelope(s), or None."""


class InMemoryTransport(CommandPublisher):
    def __init__(self, participants: Mapping[Participant, CommandHandler], keep_sent: int = 10_000) -> None:
        self._participants = dict(participants)
        self._events: queue.SimpleQueue[bytes] = queue.SimpleQueue()
        self.sent: deque[JsonObject] = deque(maxlen=keep_sent)
        """The latest command envelopes sent, oldest first, for tests to inspect."""
        self.broker_down = False
        """Set to act out a broker outage: nothing is delivered until it is cleared."""

    def publish(self, commands: Sequence[Command]) -> list[SendResult]:
        if self.broker_down:
            return [Undelivered("in-memory broker is down", transport_down=True) for _ in commands]
        return [self._publish_one(command) for command in commands]

    def healthy(self) -> str | None:
        return "in-memory broker is down" if self.broker_down else None

    def _publish_one(self, command: Command) -> SendResult:
        handler = self._participants.get(command.participant)
        if handler is None:
            return Undelivered(f"no {command.participant} participant")
        envelope = command_envelope(command)
        self.sent.append(envelope)
        try:
            replies = handler(envelope)
        except Exception as error:  # a participant's bug is its problem: retry, like a 5xx
            log.exception("%s participant failed on %s", command.participant, command.type)
            return Undelivered(f"{command.participant} participant raised {type(error).__name__}")
        if replies is None:
            replies = []
        elif isinstance(replies, Mapping):
            replies = [replies]
        for reply in replies:
            self.deliver(reply)
        return Delivered()

    def deliver(self, event: JsonObject | bytes) -> None:
        """Queues an event for the orchestrator, as if a participant had published it."""
        self._events.put(event if isinstance(event, bytes) else encode_json(event).encode())

    def next_event(self, timeout: float | None = None) -> bytes | None:
        """The oldest queued event, waiting up to `timeout` seconds (None: do not wait)."""
        try:
            if timeout is None:
                return self._events.get_nowait()
            return self._events.get(timeout=timeout)
        except queue.Empty:
            return None
