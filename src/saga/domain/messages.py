"""Commands the saga sends and events it receives, as the saga sees them.

Their wire format (the contract's JSON envelope) belongs to the transports:
`saga.adapters.envelope` reads and writes it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from saga.domain.steps import (  # re-exported: the envelope's vocabulary comes from the saga's table
    ACTIONS as ACTIONS,
    EVENT_PARTICIPANT as EVENT_PARTICIPANT,
    EVENT_TYPES as EVENT_TYPES,
    ID_EVENT_FIELDS as ID_EVENT_FIELDS,
    OBJECT_EVENT_FIELDS as OBJECT_EVENT_FIELDS,
    REQUIRED_EVENT_FIELDS as REQUIRED_EVENT_FIELDS,
    JsonObject as JsonObject,
    Participant as Participant,
    format_timestamp as format_timestamp,
)


class BadMessage(ValueError):
    """A message that cannot be applied: malformed, unknown type or missing a field."""


@dataclass(frozen=True)
class Reply:
    """The event types that answer one command: success, and its first failure type."""

    success: str
    failure: str


@dataclass(frozen=True)
class CommandSpec:
    participant: Participant
    reply: Reply


COMMANDS: Mapping[str, CommandSpec] = {
    command: CommandSpec(action.participant, Reply(action.success, action.failures[0]))
    for command, action in ACTIONS.items()
}
"""Every command the saga sends, by type (derived from the saga's table in `steps.py`)."""


def new_message_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True)
class Command:
    type: str
    saga_id: str
    payload: JsonObject
    message_id: str
    timestamp: datetime

    @property
    def participant(self) -> Participant:
        return COMMANDS[self.type].participant

    @property
    def reply(self) -> Reply:
        return COMMANDS[self.type].reply

    def failure_event(self, error: str, now: datetime) -> Event:
        """The event that stands for this command's rejection (an HTTP 4xx, say)."""
        return Event(self.reply.failure, self.saga_id, {"error": error}, now, None)


@dataclass(frozen=True)
class Event:
    type: str
    saga_id: str
    payload: JsonObject
    timestamp: datetime
    message_id: str | None = field(default=None)
