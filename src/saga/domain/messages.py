"""Commands the saga sends and events it receives, as the saga sees them.

Their wire format (the contract's JSON envelope) belongs to the transports:
`saga.adapters.envelope` reads and writes it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

JsonObject = dict[str, Any]


class Participant(StrEnum):
    """The four services the saga coordinates; transports map each to a topic or URL."""

    ORDER = "order"
    USER = "user"
    PAYMENT = "payment"
    TIMER = "timer"


class BadMessage(ValueError):
    """A message that cannot be applied: malformed, unknown type or missing a field."""


@dataclass(frozen=True)
class Reply:
    """The event types that answer one command: success, and failure."""

    success: str
    failure: str


@dataclass(frozen=True)
class CommandSpec:
    participant: Participant
    reply: Reply


COMMANDS: Mapping[str, CommandSpec] = {
    "create_order": CommandSpec(Participant.ORDER, Reply("order.created", "order.creation_failed")),
    "get_payment_info": CommandSpec(Participant.USER, Reply("user.payment_info_retrieved", "user.payment_info_failed")),
    "authorize_payment": CommandSpec(Participant.PAYMENT, Reply("payment.authorized", "payment.failed")),
    "update_order_status": CommandSpec(Participant.ORDER, Reply("order.status_updated", "order.status_update_failed")),
    "start_order_timer": CommandSpec(Participant.TIMER, Reply("timer.started", "timer.failed")),
    "cancel_order": CommandSpec(Participant.ORDER, Reply("order.cancelled", "order.cancellation_failed")),
    "revert_payment": CommandSpec(Participant.PAYMENT, Reply("payment.released", "payment.release_failed")),
}

# Payload fields an event must carry for the saga to use it (CONTRACT.md, "Event payloads").
REQUIRED_EVENT_FIELDS: Mapping[str, tuple[str, ...]] = {
    "order.created": ("order_id",),
    "user.payment_info_retrieved": ("payment_info",),
    "payment.authorized": ("payment_id",),
}

EVENT_PARTICIPANT: Mapping[str, Participant] = {
    event_type: spec.participant
    for spec in COMMANDS.values()
    for event_type in (spec.reply.success, spec.reply.failure)
}
EVENT_TYPES = frozenset(EVENT_PARTICIPANT)


def new_message_id() -> str:
    return str(uuid.uuid4())


def format_timestamp(moment: datetime) -> str:
    """The contract's time text: ISO 8601 in UTC with its offset, to the microsecond
    (`2026-11-28T12:00:00.000000+00:00`), as payload fields such as `timeout_at` carry it."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


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

    @property
    def error(self) -> str | None:
        value = self.payload.get("error")
        return None if value is None else str(value)
