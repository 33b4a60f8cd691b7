"""The message envelope: parsing events (docs/contract.md, "Message envelope") and writing commands."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from tests.unit.domain_helpers import NOW, SAGA_ID, start

from saga.adapters.envelope import command_envelope, decode_event, event_envelope, parse_event
from saga.domain.messages import (
    COMMANDS,
    EVENT_TYPES,
    BadMessage,
    Command,
    Event,
    Participant,
)
from saga.domain.saga import failure_reason

MESSAGE_ID = "0b7e2a4c-5d6f-4a1b-9c8d-7e6f5a4b3c2d"
DROP = object()
"""Passed as a field's value to `envelope()`: leave the field out."""


def envelope(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "order.created",
        "correlation_id": SAGA_ID,
        "timestamp": "2026-11-28T12:00:00.000000+00:00",
        "payload": {"order_id": "order-42"},
        "message_id": MESSAGE_ID,
    }
    for name, value in changes.items():
        if value is DROP:
            body.pop(name)
        else:
            body[name] = value
    return body


def bad(body: Any) -> str:
    with pytest.raises(BadMessage) as caught:
        parse_event(body)
    return str(caught.value)


def bad_raw(raw: bytes | str) -> str:
    with pytest.raises(BadMessage) as caught:
        decode_event(raw)
    return str(caught.value)


# ------------------------------------------------------------ valid events


def test_a_valid_envelope() -> None:
    parsed = parse_event(envelope())

    assert parsed == Event("order.created", SAGA_ID, {"order_id": "order-42"}, NOW, MESSAGE_ID)
    assert parsed.timestamp.utcoffset() == timedelta(0)


def test_decode_event_from_bytes_and_from_text() -> None:
    text = json.dumps(envelope())

    assert decode_event(text.encode("utf-8")) == parse_event(envelope())
    assert decode_event(text) == parse_event(envelope())


def test_decode_event_reads_utf8_payloads() -> None:
    raw = json.dumps(envelope(type="order.creation_failed", payload={"error": "café fermé ☕"}), ensure_ascii=False)

    parsed = decode_event(raw.encode("utf-8"))

    assert parsed.payload["error"] == "café fermé ☕"


def test_timestamp_without_offset_is_read_as_utc() -> None:
    parsed = parse_event(envelope(timestamp="2026-11-28T12:00:00.123456"))

    assert parsed.timestamp == datetime(2026, 11, 28, 12, 0, 0, 123456, tzinfo=UTC)
    assert parsed.timestamp.utcoffset() == timedelta(0)


def test_timestamp_with_another_offset_keeps_the_instant() -> None:
    parsed = parse_event(envelope(timestamp="2026-11-28T14:00:00+02:00"))

    assert parsed.timestamp == NOW


def test_timestamp_with_z_suffix() -> None:
    assert parse_event(envelope(timestamp="2026-11-28T12:00:00Z")).timestamp == NOW


def test_unknown_extra_fields_are_ignored() -> None:
    parsed = parse_event(envelope(source="order-service", version=3, headers={"a": 1}))

    assert parsed == parse_event(envelope())


def test_unknown_payload_fields_are_kept() -> None:
    parsed = parse_event(envelope(payload={"order_id": "order-42", "eta": 12}))

    assert parsed.payload == {"order_id": "order-42", "eta": 12}


def test_message_id_is_optional_on_events() -> None:
    assert parse_event(envelope(message_id=DROP)).message_id is None
    assert parse_event(envelope(message_id=None)).message_id is None


def test_correlation_id_is_normalised() -> None:
    assert parse_event(envelope(correlation_id=SAGA_ID.upper())).saga_id == SAGA_ID


@pytest.mark.parametrize("type_", sorted(EVENT_TYPES))
def test_every_known_event_type_is_accepted(type_: str) -> None:
    payload = {
        "order.created": {"order_id": "o"},
        "user.payment_info_retrieved": {"payment_info": {}},
        "payment.authorized": {"payment_id": "p"},
    }.get(type_, {})

    assert parse_event(envelope(type=type_, payload=payload)).type == type_


def test_failure_events_may_carry_an_error() -> None:
    parsed = parse_event(envelope(type="payment.failed", payload={"error": "card declined"}))

    assert failure_reason(parsed.payload) == "card declined"
    assert failure_reason(parse_event(envelope(type="payment.failed", payload={})).payload) is None


UNSTORABLE = {"NUL": "a\x00b", "unpaired surrogate": "a\udc00b"}
"""Text PostgreSQL refuses in text and JSON columns, as a JSON escape can spell it."""


def escaped(body: dict[str, Any]) -> str:
    return json.dumps(body)  # ASCII: the NUL and the surrogate travel as `\u` escapes


@pytest.mark.parametrize("text", UNSTORABLE.values(), ids=UNSTORABLE.keys())
def test_text_no_database_stores_is_ignored_with_the_fields_the_saga_ignores(text: str) -> None:
    payload = {"order_id": "order-42", "note": text, text: 1}

    parsed = decode_event(escaped(envelope(source=f"order{text}service", payload=payload)))

    assert parsed.type == "order.created" and parsed.payload["order_id"] == "order-42"


@pytest.mark.parametrize("text", UNSTORABLE.values(), ids=UNSTORABLE.keys())
@pytest.mark.parametrize(
    ("type_", "field", "payload"),
    [
        ("order.created", "payload.order_id", {"order_id": "@"}),
        ("payment.authorized", "payload.payment_id", {"payment_id": "@"}),
        ("order.cancelled", "payload.order_id", {"order_id": "@"}),
        ("payment.released", "payload.payment_id", {"payment_id": "@"}),
        ("user.payment_info_retrieved", "payload.payment_info", {"payment_info": {"card": {"brand": "@"}}}),
        ("user.payment_info_retrieved", "payload.payment_info", {"payment_info": {"@": "key"}}),
        ("timer.started", "message_id", {}),
    ],
)
def test_text_no_database_stores_in_a_field_the_saga_keeps_is_a_bad_message_naming_it(
    text: str, type_: str, field: str, payload: dict[str, Any]
) -> None:
    filled = json.loads(json.dumps(payload).replace("@", json.dumps(text)[1:-1]))
    body = envelope(type=type_, payload=filled)
    if field == "message_id":
        body["message_id"] = text

    reason = bad_raw(escaped(body))

    assert reason.startswith(f"{field} must") and ("NUL" in reason or "surrogate" in reason), reason


@pytest.mark.parametrize("text", UNSTORABLE.values(), ids=UNSTORABLE.keys())
def test_a_failures_reason_keeps_what_it_can_store(text: str) -> None:
    body = envelope(type="payment.failed", payload={"error": f"E{text}", "message": f"card{text}declined"})

    reason = failure_reason(decode_event(escaped(body)).payload)

    assert reason is not None and reason.encode("utf-8") and "\x00" not in reason
    assert reason in ("Ea b: carda bdeclined", "Ea\ufffdb: carda\ufffdbdeclined")


def test_a_failures_error_that_is_not_text_is_named_by_its_json() -> None:
    body = envelope(type="order.creation_failed", payload={"error": {"code": 1}, "message": ["x", None, 2.5]})

    assert failure_reason(decode_event(json.dumps(body)).payload) == '{"code": 1}: ["x", null, 2.5]'


def test_an_event_nested_too_deeply_says_so() -> None:
    assert bad_raw("[" * 100_000 + "]" * 100_000) == "not valid JSON: nested too deeply"


def test_event_envelope_round_trips() -> None:
    original = Event("payment.authorized", SAGA_ID, {"payment_id": "p-1"}, NOW, MESSAGE_ID)

    assert parse_event(event_envelope(original)) == original
    assert "message_id" not in event_envelope(Event("timer.started", SAGA_ID, {}, NOW))


# ----------------------------------------------------------- bad messages


@pytest.mark.parametrize("raw", [b"", b"not json", b'{"type": ', "{'type': 'order.created'}", b"\x00"])
def test_not_json(raw: bytes | str) -> None:
    assert bad_raw(raw) == "not valid UTF-8 JSON"


def test_not_utf8() -> None:
    raw = b'{"type": "order.created", "payload": {"error": "caf\xe9"}}'

    assert bad_raw(raw) == "not valid UTF-8 JSON"


@pytest.mark.parametrize("body", [[], [envelope()], "order.created", 42, None, True])
def test_not_an_object(body: Any) -> None:
    assert bad(body) == "event must be a JSON object"
    assert bad_raw(json.dumps(body)) == "event must be a JSON object"


@pytest.mark.parametrize("type_", [DROP, None, "", 42, ["order.created"]])
def test_missing_or_empty_type(type_: Any) -> None:
    assert bad(envelope(type=type_)) == "type must be a non-empty string"


@pytest.mark.parametrize("type_", ["order.exploded", "create_order", "ORDER.CREATED", "order.created "])
def test_unknown_type(type_: str) -> None:
    assert bad(envelope(type=type_)) == f"unknown event type {type_!r}"


def test_unknown_type_is_truncated_in_the_message() -> None:
    message = bad(envelope(type="x" * 500))

    assert message.startswith("unknown event type 'xxx")
    assert len(message) < 120


@pytest.mark.parametrize("correlation_id", [DROP, None, "", 12345])
def test_missing_correlation_id(correlation_id: Any) -> None:
    assert bad(envelope(correlation_id=correlation_id)) == "correlation_id must be a non-empty string"


@pytest.mark.parametrize(
    "correlation_id", ["saga-1", "6f1c2a8e-3b7d-4c55-9a0e", "zzzzzzzz-3b7d-4c55-9a0e-0d6b2f9e4a11"]
)
def test_non_uuid_correlation_id(correlation_id: str) -> None:
    assert bad(envelope(correlation_id=correlation_id)) == "correlation_id must be a UUID"


@pytest.mark.parametrize(
    "timestamp", [DROP, None, 1764331200, "yesterday", "2026-13-01T00:00:00", "", "28/11/2026 12:00"]
)
def test_bad_timestamp(timestamp: Any) -> None:
    assert bad(envelope(timestamp=timestamp)) == "timestamp must be an ISO 8601 string"


@pytest.mark.parametrize("payload", [DROP, None, [], "order-42", 1])
def test_payload_not_an_object(payload: Any) -> None:
    assert bad(envelope(payload=payload)) == "payload must be a JSON object"


@pytest.mark.parametrize(
    ("type_", "field"),
    [
        ("order.created", "order_id"),
        ("user.payment_info_retrieved", "payment_info"),
        ("payment.authorized", "payment_id"),
    ],
)
@pytest.mark.parametrize("how", ["missing", "null", "empty"])
def test_required_payload_field_missing(type_: str, field: str, how: str) -> None:
    payload: dict[str, Any] = {"other": 1}
    if how == "null":
        payload[field] = None
    elif how == "empty":
        payload[field] = ""

    assert bad(envelope(type=type_, payload=payload)) == f"{type_} needs payload.{field}"


ID_EVENTS = [
    ("order.created", "order_id"),
    ("payment.authorized", "payment_id"),
    ("order.cancelled", "order_id"),
    ("payment.released", "payment_id"),
    ("order.status_updated", "order_id"),
    ("payment.failed", "payment_id"),
]


@pytest.mark.parametrize(("type_", "field"), ID_EVENTS)
@pytest.mark.parametrize("value", [{"a": [1, 2]}, False, True, 1.5, 1e300, ["o-1"], ""])
def test_an_id_that_is_not_a_string_or_an_integer_is_a_bad_message(type_: str, field: str, value: Any) -> None:
    message = bad(envelope(type=type_, payload={field: value}))

    assert message in (f"payload.{field} must be a non-empty string or an integer", f"{type_} needs payload.{field}")


@pytest.mark.parametrize(("type_", "field"), ID_EVENTS)
def test_an_integer_id_is_kept_as_its_decimal_text(type_: str, field: str) -> None:
    parsed = parse_event(envelope(type=type_, payload={field: 12345678901234567890, "other": 1}))

    assert parsed.payload == {field: "12345678901234567890", "other": 1}


def test_a_string_id_is_kept_as_it_is() -> None:
    assert parse_event(envelope(payload={"order_id": " 42 "})).payload["order_id"] == " 42 "


@pytest.mark.parametrize("payment_info", ["tok_visa", 42, ["card"], True])
def test_payment_info_not_an_object(payment_info: Any) -> None:
    body = envelope(type="user.payment_info_retrieved", payload={"payment_info": payment_info})

    assert bad(body) == "payload.payment_info must be a JSON object"


@pytest.mark.parametrize("message_id", ["", 42, ["m"], {"id": "m"}, "m" * 201, True])
def test_bad_message_id(message_id: Any) -> None:
    assert bad(envelope(message_id=message_id)) == "message_id must be a non-empty string of at most 200 characters"


def test_message_id_of_200_characters_is_accepted() -> None:
    assert parse_event(envelope(message_id="m" * 200)).message_id == "m" * 200


def test_bad_message_is_a_value_error() -> None:
    assert issubclass(BadMessage, ValueError)


# ----------------------------------------------------------------- commands


def test_command_envelope_has_all_five_fields_and_an_offset_timestamp() -> None:
    local = timezone(timedelta(hours=-5))
    command = Command(
        "get_payment_info", SAGA_ID, {"user_id": "cust_123"}, MESSAGE_ID, datetime(2026, 11, 28, 7, tzinfo=local)
    )

    body = command_envelope(command)

    assert body == {
        "type": "get_payment_info",
        "correlation_id": SAGA_ID,
        "timestamp": "2026-11-28T12:00:00.000000+00:00",
        "payload": {"user_id": "cust_123"},
        "message_id": MESSAGE_ID,
    }
    stamp = datetime.fromisoformat(body["timestamp"])
    assert stamp.tzinfo is not None and stamp.utcoffset() == timedelta(0)
    assert json.loads(json.dumps(body)) == body


def test_command_message_id_is_a_uuid_when_made_by_the_saga() -> None:
    _, commands = start()
    body = command_envelope(commands[0])

    assert set(body) == {"type", "correlation_id", "timestamp", "payload", "message_id"}
    assert str(uuid.UUID(body["message_id"])) == body["message_id"]
    assert body["correlation_id"] == SAGA_ID


FAILURES = {
    "create_order": "order.creation_failed",
    "get_payment_info": "user.payment_info_failed",
    "authorize_payment": "payment.failed",
    "update_order_status": "order.status_update_failed",
    "start_order_timer": "timer.failed",
    "cancel_order": "order.cancellation_failed",
    "revert_payment": "payment.release_failed",
}


@pytest.mark.parametrize(("command_type", "failure"), sorted(FAILURES.items()))
def test_failure_event_maps_each_command_to_its_failure_type(command_type: str, failure: str) -> None:
    command = Command(command_type, SAGA_ID, {}, MESSAGE_ID, NOW)
    later = NOW + timedelta(seconds=3)

    failed = command.failure_event("HTTP 422: nope", later)

    assert failed == Event(failure, SAGA_ID, {"error": "HTTP 422: nope"}, later, None)
    assert failure_reason(failed.payload) == "HTTP 422: nope"
    assert failed.type in EVENT_TYPES


def test_every_command_has_a_failure_mapping() -> None:
    assert set(COMMANDS) == set(FAILURES)


@pytest.mark.parametrize(
    ("command_type", "participant"),
    [
        ("create_order", Participant.ORDER),
        ("update_order_status", Participant.ORDER),
        ("cancel_order", Participant.ORDER),
        ("get_payment_info", Participant.USER),
        ("authorize_payment", Participant.PAYMENT),
        ("revert_payment", Participant.PAYMENT),
        ("start_order_timer", Participant.TIMER),
    ],
)
def test_each_command_goes_to_its_participant(command_type: str, participant: Participant) -> None:
    assert Command(command_type, SAGA_ID, {}, MESSAGE_ID, NOW).participant is participant


def test_event_types_are_exactly_the_contracts() -> None:
    assert {
        "order.created",
        "order.creation_failed",
        "order.status_updated",
        "order.status_update_failed",
        "order.cancelled",
        "order.cancellation_failed",
        "user.payment_info_retrieved",
        "user.payment_info_failed",
        "payment.authorized",
        "payment.failed",
        "payment.released",
        "payment.release_failed",
        "timer.started",
        "timer.failed",
    } == EVENT_TYPES


def test_json_in_another_encoding_than_utf8_is_a_bad_message() -> None:
    envelope = '{"type": "timer.started", "correlation_id": "6f1c1d2e-0000-4000-8000-000000000000", "timestamp": "2026-11-28T12:00:00", "payload": {}}'
    assert decode_event(envelope.encode("utf-8")).type == "timer.started"
    with pytest.raises(BadMessage, match="UTF-8"):
        decode_event(envelope.encode("utf-16"))


def test_a_timestamp_that_cannot_be_expressed_in_utc_is_a_bad_message() -> None:
    with pytest.raises(BadMessage, match="timestamp"):
        parse_event(
            {
                "type": "timer.started",
                "correlation_id": "6f1c1d2e-0000-4000-8000-000000000000",
                "timestamp": "0001-01-01T00:00:00+01:00",
                "payload": {},
            }
        )


def test_the_domain_imports_no_codec_and_no_json() -> None:
    import ast
    from pathlib import Path

    import saga.domain

    imported: dict[str, set[str]] = {}
    for module in Path(saga.domain.__file__).parent.glob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
        imported[module.name] = {name for name in names if name == "json" or name.startswith("saga.adapters")}

    assert imported and all(not names for names in imported.values()), imported
