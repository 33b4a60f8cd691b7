"""Commands the saga sends and events it receives, and their JSON envelope.

The envelope is the contract's: `type`, `correlation_id` (the saga id), `timestamp`,
`payload`, and `message_id` (always on commands, optional on events).
"""

from __future__ import annotations

import json
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
    """An envelope that cannot be applied: malformed, unknown type or missing a field."""


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
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def parse_timestamp(text: str) -> datetime:
    """ISO 8601; a timestamp without a UTC offset is read as UTC (older participants send those)."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment


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

    def envelope(self) -> JsonObject:
        return {
            "type": self.type,
            "correlation_id": self.saga_id,
            "timestamp": format_timestamp(self.timestamp),
            "payload": self.payload,
            "message_id": self.message_id,
        }

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

    def envelope(self) -> JsonObject:
        body: JsonObject = {
            "type": self.type,
            "correlation_id": self.saga_id,
            "timestamp": format_timestamp(self.timestamp),
            "payload": self.payload,
        }
        if self.message_id is not None:
            body["message_id"] = self.message_id
        return body


def _uuid_text(value: object, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise BadMessage(f"{name} must be a non-empty string")
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise BadMessage(f"{name} must be a UUID") from None


def parse_event(body: object) -> Event:
    """Validates an event envelope (already decoded JSON). Raises BadMessage saying why."""
    if not isinstance(body, dict):
        raise BadMessage("event must be a JSON object")
    event_type = body.get("type")
    if not isinstance(event_type, str) or not event_type:
        raise BadMessage("type must be a non-empty string")
    if event_type not in EVENT_TYPES:
        raise BadMessage(f"unknown event type {event_type[:80]!r}")
    saga_id = _uuid_text(body.get("correlation_id"), "correlation_id")
    stamp = body.get("timestamp")
    if not isinstance(stamp, str):
        raise BadMessage("timestamp must be an ISO 8601 string")
    try:
        timestamp = parse_timestamp(stamp)
        timestamp.astimezone(UTC)  # a moment that cannot be expressed in UTC is unusable
    except (ValueError, OverflowError):
        raise BadMessage("timestamp must be an ISO 8601 string") from None
    payload = body.get("payload")
    if not isinstance(payload, dict):
        raise BadMessage("payload must be a JSON object")
    for name in REQUIRED_EVENT_FIELDS.get(event_type, ()):
        if payload.get(name) in (None, ""):
            raise BadMessage(f"{event_type} needs payload.{name}")
    if event_type == "user.payment_info_retrieved" and not isinstance(payload["payment_info"], dict):
        raise BadMessage("payload.payment_info must be a JSON object")
    message_id = body.get("message_id")
    if message_id is not None and (not isinstance(message_id, str) or not 0 < len(message_id) <= 200):
        raise BadMessage("message_id must be a non-empty string of at most 200 characters")
    return Event(event_type, saga_id, payload, timestamp, message_id)


def _not_json(constant: str) -> object:
    raise ValueError(f"{constant} is not JSON")


def decode_json(raw: bytes | str) -> object:
    """Strict JSON in UTF-8: no NaN or Infinity, and no text that cannot be stored (a NUL
    character, half of a surrogate pair). Raises ValueError (RecursionError when absurdly nested)."""
    text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    value = json.loads(text, parse_constant=_not_json)
    if "\\u" in text:  # only escapes can spell such characters
        if "\\u0000" in text:
            raise ValueError("JSON text must not contain NUL characters")
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("JSON text must be valid Unicode (no unpaired surrogates)") from None
    return value


def decode_event(raw: bytes | str) -> Event:
    """Parses raw JSON (UTF-8) into an Event. Raises BadMessage for anything unusable."""
    try:
        body = decode_json(raw)
    except (ValueError, RecursionError) as error:
        reason = str(error) if "JSON text must" in str(error) else "not valid UTF-8 JSON"
        raise BadMessage(reason) from None
    return parse_event(body)
