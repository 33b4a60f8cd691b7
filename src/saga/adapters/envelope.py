"""The wire format: commands and events as the contract's JSON envelope, and strict JSON.

docs/contract.md, "Message envelope": `type`, `correlation_id` (the saga id),
`timestamp` (ISO 8601, written with a UTC offset, read as UTC without one),
`payload`, and `message_id` (always on commands, optional on events). Every
transport (Kafka, HTTP, in-memory) reads and writes envelopes through this module,
and every writer of JSON (transports, the SQL JSON columns, the API) goes through
`encode_json`, so no writer can emit a non-finite number.
"""

from __future__ import annotations

import json
import math
import re
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from saga.domain.messages import (
    ACTIONS,
    EVENT_TYPES,
    OBJECT_EVENT_FIELDS,
    REQUIRED_EVENT_FIELDS,
    BadMessage,
    Command,
    Event,
    JsonObject,
    format_timestamp,
)

__all__ = [
    "BadMessage",
    "JsonNumber",
    "command_envelope",
    "decode_event",
    "decode_json",
    "encode_command",
    "encode_json",
    "event_envelope",
    "format_timestamp",
    "parse_event",
    "parse_timestamp",
    "without_non_finite",
]

MAX_MESSAGE_ID_CHARS = 200
ID_FIELDS = ("order_id", "payment_id")
"""Payload fields that name a participant's resource (docs/contract.md, "Event payloads")."""
REASON_FIELDS = ("error", "message")
"""A failure event's payload fields that give its reason (docs/contract.md, "Event payloads")."""
FAILURE_EVENT_TYPES = frozenset(failure for action in ACTIONS.values() for failure in action.failures)
_FLOAT_MAX = int(sys.float_info.max)
_FLOAT_MAX_DIGITS = len(str(_FLOAT_MAX))


class JsonNumber(float):
    """A JSON number with a fraction or an exponent, as read: its value, and its text.

    `str()` gives the text exactly as the JSON had it (`"12.990"`, `"1e2"`), so exact
    decimal arithmetic (`Decimal(str(number))`) never passes through a binary float;
    JSON writers still write the float's value.
    """

    text: str

    def __new__(cls, text: str) -> JsonNumber:
        number = super().__new__(cls, text)
        number.text = text
        return number

    def __getnewargs__(self) -> tuple[str]:  # type: ignore[override]  # copies keep the text
        return (self.text,)

    def __str__(self) -> str:
        return self.text


def _finite_float(text: str) -> JsonNumber:
    number = JsonNumber(text)
    if not math.isfinite(number):
        raise ValueError(f"number {text[:40]} is outside the finite range")
    return number


def _finite_int(text: str) -> int:
    if len(text.lstrip("-")) > _FLOAT_MAX_DIGITS:  # before int(), which refuses 4,301 digits in its own words
        raise ValueError(f"number {text[:40]} is outside the finite range")
    number = int(text)
    if len(text) >= _FLOAT_MAX_DIGITS and abs(number) > _FLOAT_MAX:
        raise ValueError(f"number {text[:40]} is outside the finite range")
    return number


def _not_json(constant: str) -> object:
    raise ValueError(f"{constant} is not JSON")


def _strings(value: object) -> Iterator[str]:
    """Every string in a decoded JSON value, object keys included; iterative, any depth."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _unstorable(value: object) -> str | None:
    """Why `value` holds text no database can store (a NUL character, half of a surrogate
    pair, which PostgreSQL refuses in text and JSON), or None when it holds none."""
    for string in _strings(value):
        if "\x00" in string:
            return "must not contain NUL characters"
        try:
            string.encode("utf-8")
        except UnicodeEncodeError:
            return "must be valid Unicode (no unpaired surrogates)"
    return None


def _loads(raw: bytes | str) -> Any:
    """Strict JSON in UTF-8: no NaN or Infinity, no number beyond the double range.
    Raises ValueError saying why (RecursionError when absurdly nested)."""
    text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    return json.loads(text, parse_constant=_not_json, parse_float=_finite_float, parse_int=_finite_int)


def decode_json(raw: bytes | str) -> Any:
    """Strict JSON in UTF-8 (docs/contract.md, "Message envelope"), all of which will be stored.

    Refuses NaN, Infinity and number literals outside the double range (`1e309`), and
    text that cannot be stored (a NUL character, half of a surrogate pair) anywhere in
    the value. Numbers with a fraction or exponent come back as `JsonNumber` (a float
    that keeps its text). Raises ValueError saying why (RecursionError when absurdly
    nested). An event, of which only some fields are kept, is read by `decode_event`.
    """
    text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    value = _loads(text)
    if "\\u" in text:  # only escapes can spell such characters
        problem = _unstorable(value)
        if problem is not None:
            raise ValueError(f"JSON text {problem}")
    return value


def encode_json(value: object) -> str:
    """JSON text for any writer. Raises ValueError on a non-finite number rather than
    writing `Infinity` or `NaN`, which are not JSON."""
    return json.dumps(value, allow_nan=False)


def without_non_finite(value: object) -> object:
    """A copy of `value` with every non-finite number replaced by null: for showing data
    stored before non-finite numbers were refused."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: without_non_finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [without_non_finite(item) for item in value]
    return value


def parse_timestamp(text: str) -> datetime:
    """ISO 8601; a timestamp without a UTC offset is read as UTC (older participants send those)."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment


def command_envelope(command: Command) -> JsonObject:
    return {
        "type": command.type,
        "correlation_id": command.saga_id,
        "timestamp": format_timestamp(command.timestamp),
        "payload": command.payload,
        "message_id": command.message_id,
    }


def encode_command(command: Command) -> bytes:
    """The command's envelope as UTF-8 JSON bytes. Raises ValueError on a non-finite number."""
    return encode_json(command_envelope(command)).encode()


def event_envelope(event: Event) -> JsonObject:
    body: JsonObject = {
        "type": event.type,
        "correlation_id": event.saga_id,
        "timestamp": format_timestamp(event.timestamp),
        "payload": event.payload,
    }
    if event.message_id is not None:
        body["message_id"] = event.message_id
    return body


def _uuid_text(value: object, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise BadMessage(f"{name} must be a non-empty string")
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise BadMessage(f"{name} must be a UUID") from None


def _id_text(value: object, name: str) -> str:
    """An id is a string; an integer is kept as its decimal text (docs/contract.md, "Event payloads")."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise BadMessage(f"{name} must be a non-empty string or an integer")


def parse_event(body: object) -> Event:
    """Validates an event envelope (already decoded JSON). Raises BadMessage saying why.

    Ids in the payload (`order_id`, `payment_id`) come back as strings.
    """
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
    for name in OBJECT_EVENT_FIELDS.get(event_type, ()):
        if not isinstance(payload[name], dict):
            raise BadMessage(f"payload.{name} must be a JSON object")
    ids = {name: _id_text(payload[name], f"payload.{name}") for name in ID_FIELDS if payload.get(name) is not None}
    for name in (*ids, *OBJECT_EVENT_FIELDS.get(event_type, ())):
        _must_be_storable(payload[name], f"payload.{name}")
    reasons = {name: _reason_text(payload.get(name)) for name in REASON_FIELDS if event_type in FAILURE_EVENT_TYPES}
    changed = {**ids, **{name: text for name, text in reasons.items() if text is not None}}
    if changed:
        payload = {**payload, **changed}
    message_id = body.get("message_id")
    if message_id is not None and (not isinstance(message_id, str) or not 0 < len(message_id) <= MAX_MESSAGE_ID_CHARS):
        raise BadMessage(f"message_id must be a non-empty string of at most {MAX_MESSAGE_ID_CHARS} characters")
    if message_id is not None:
        _must_be_storable(message_id, "message_id")
    return Event(event_type, saga_id, payload, timestamp, message_id)


def _must_be_storable(value: object, name: str) -> None:
    """A field the saga keeps, stores or forwards may hold no text a database cannot store;
    the fields it ignores may (docs/contract.md, "Message envelope")."""
    problem = _unstorable(value)
    if problem is not None:
        raise BadMessage(f"{name} {problem}")


def _reason_text(value: object) -> str | None:
    """A failure's `error` or `message` as text: a string as it is (`one_line` in the domain
    makes it one storable line), any other value as its JSON (`{"code": 1}`); None when the
    field is absent or already a string."""
    if value is None or isinstance(value, str):
        return None
    return encode_json(value)  # ASCII: an unpaired surrogate comes out escaped


def decode_event(raw: bytes | str) -> Event:
    """Parses raw JSON (UTF-8) into an Event. Raises BadMessage for anything unusable.

    Text no database can store (a NUL character, half of a surrogate pair) makes the event
    bad only in a field the saga keeps (`parse_event`); in the fields it ignores, such as
    the envelope's `source`, it is ignored with them (docs/contract.md, "Message envelope").
    """
    try:
        body = _loads(raw)
    except RecursionError:
        raise BadMessage("not valid JSON: nested too deeply") from None
    except ValueError as error:
        reason = str(error) if _SAYS_WHY.search(str(error)) else "not valid UTF-8 JSON"
        raise BadMessage(reason) from None
    return parse_event(body)


_SAYS_WHY = re.compile(r"outside the finite range|is not JSON")
