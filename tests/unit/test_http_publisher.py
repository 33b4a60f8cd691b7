"""The HTTP command publisher against a real HTTP server on loopback: each status and body it may meet."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from saga.adapters.envelope import command_envelope
from saga.adapters.http_publisher import MAX_RETRY_AFTER, HttpCommandPublisher, retry_after
from saga.domain.messages import Command, Participant
from saga.ports.messaging import Delivered, Rejected, Undelivered

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@dataclass
class Answer:
    status: int
    body: bytes = b""
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Received:
    path: str
    content_type: str
    body: Any


Responder = Callable[[Any], Answer]


class ParticipantServer(ThreadingHTTPServer):
    daemon_threads = True
    # A batch opens up to eight connections at once; the default backlog of five can drop
    # a SYN under load, and its retransmission comes after the one-second connect timeout.
    request_queue_size = 64

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), ParticipantHandler)
        self.respond: Responder = lambda command: Answer(202)
        self.received: list[Received] = []
        self.lock = threading.Lock()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up (the timeout test) is expected, not news

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class ParticipantHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ParticipantServer

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        body = json.loads(raw)
        with self.server.lock:
            self.server.received.append(Received(self.path, self.headers.get("Content-Type", ""), body))
        answer = self.server.respond(body)
        if answer.delay:
            time.sleep(answer.delay)
        self.send_response(answer.status)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[ParticipantServer]:
    participant = ParticipantServer()
    thread = threading.Thread(target=participant.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield participant
    participant.shutdown()
    participant.server_close()


def publisher_for(base: str, read_timeout: float = 5.0, **kwargs: Any) -> HttpCommandPublisher:
    return HttpCommandPublisher(
        {p: base for p in Participant}, connect_timeout=1.0, read_timeout=read_timeout, **kwargs
    )


@pytest.fixture
def publisher(server: ParticipantServer) -> Iterator[HttpCommandPublisher]:
    publisher = publisher_for(server.url)
    yield publisher
    publisher.close()


def command(command_type: str = "create_order", saga_id: str | None = None) -> Command:
    return Command(command_type, saga_id or str(uuid.uuid4()), {"customer_id": "cust_123"}, str(uuid.uuid4()), NOW)


def event(event_type: str, saga_id: str, payload: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "type": event_type,
        "correlation_id": saga_id,
        "timestamp": "2026-11-28T12:00:01.000000+00:00",
        "payload": {"order_id": "order_1"} if payload is None else payload,
        "message_id": str(uuid.uuid4()),
        **extra,
    }


def answer_json(status: int, body: Any) -> Responder:
    return lambda _command: Answer(status, json.dumps(body).encode())


def publish_one(publisher: HttpCommandPublisher, sent: Command) -> Delivered | Rejected | Undelivered:
    [result] = publisher.publish([sent])
    return result


# ------------------------------------------------------------------ 200: the reply


def test_posts_the_envelope_as_json_to_the_commands_path(
    server: ParticipantServer, publisher: HttpCommandPublisher
) -> None:
    sent = command()
    publish_one(publisher, sent)
    [received] = server.received
    assert received.path == "/commands"
    assert received.content_type == "application/json"
    assert received.body == command_envelope(sent)
    assert received.body["message_id"] == sent.message_id


@pytest.mark.parametrize("reply_type", ["order.created", "order.creation_failed"])
def test_200_with_this_commands_reply_is_delivered_with_it(
    server: ParticipantServer, publisher: HttpCommandPublisher, reply_type: str
) -> None:
    sent = command()
    body = event(reply_type, sent.saga_id, {"order_id": "order_7", "error": "no stock"}, unknown_extra="ignored")
    server.respond = answer_json(200, body)
    result = publish_one(publisher, sent)
    assert isinstance(result, Delivered) and result.reply is not None
    assert result.reply.type == reply_type
    assert result.reply.saga_id == sent.saga_id
    assert result.reply.message_id == body["message_id"]
    assert result.reply.payload["order_id"] == "order_7"


def test_a_timestamp_without_offset_in_a_reply_is_read_as_utc(
    server: ParticipantServer, publisher: HttpCommandPublisher
) -> None:
    sent = command()
    server.respond = answer_json(200, event("order.created", sent.saga_id, timestamp="2026-11-28T12:00:00.123456"))
    result = publish_one(publisher, sent)
    assert isinstance(result, Delivered) and result.reply is not None
    assert result.reply.timestamp == datetime(2026, 11, 28, 12, 0, 0, 123456, tzinfo=UTC)


OTHER_SAGA = "6f1c1d2e-0000-4000-8000-000000000000"
UNUSABLE_REPLIES: list[tuple[str, Callable[[Command], bytes], str]] = [
    ("another saga", lambda c: json.dumps(event("order.created", OTHER_SAGA)).encode(), f"names saga {OTHER_SAGA}"),
    (
        "another command's reply",
        lambda c: json.dumps(event("timer.started", c.saga_id, {})).encode(),
        "does not answer create_order",
    ),
    ("empty body", lambda c: b"", "not valid UTF-8 JSON"),
    ("not JSON", lambda c: b"<html>ok</html>", "not valid UTF-8 JSON"),
    ("not UTF-8", lambda c: b"\xff\xfe{}", "not valid UTF-8 JSON"),
    ("an acknowledgement", lambda c: b'{"success": true}', "type must be"),
    ("JSON array", lambda c: json.dumps([event("order.created", c.saga_id)]).encode(), "JSON object"),
    (
        "missing required field",
        lambda c: json.dumps(event("order.created", c.saga_id, {})).encode(),
        "payload.order_id",
    ),
    ("correlation id not a UUID", lambda c: json.dumps(event("order.created", "saga-1")).encode(), "UUID"),
    ("deeply nested", lambda c: b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    (
        "an id that is an object",
        lambda c: json.dumps(event("order.created", c.saga_id, {"order_id": {"a": [1, 2]}})).encode(),
        "payload.order_id must be a non-empty string or an integer",
    ),
    (
        "an id that is a boolean",
        lambda c: json.dumps(event("order.created", c.saga_id, {"order_id": False})).encode(),
        "payload.order_id must be a non-empty string or an integer",
    ),
    (
        "a non-finite number",
        lambda c: json.dumps(event("order.created", c.saga_id, {"order_id": "o"})).replace('"o"', "1e309").encode(),
        "outside the finite range",
    ),
]


@pytest.mark.parametrize(("case", "make_body", "reason"), UNUSABLE_REPLIES, ids=[c[0] for c in UNUSABLE_REPLIES])
def test_200_with_an_unusable_body_is_a_failed_attempt_logged_and_never_applied(
    server: ParticipantServer,
    publisher: HttpCommandPublisher,
    caplog: pytest.LogCaptureFixture,
    case: str,
    make_body: Callable[[Command], bytes],
    reason: str,
) -> None:
    sent = command()
    server.respond = lambda _command: Answer(200, make_body(sent))
    with caplog.at_level(logging.WARNING, logger="saga.adapters.http_publisher"):
        result = publish_one(publisher, sent)
    assert isinstance(result, Undelivered)
    assert reason in result.reason
    assert any(sent.saga_id in record.getMessage() and reason in record.getMessage() for record in caplog.records)


def test_a_reply_over_the_size_limit_is_a_failed_attempt(server: ParticipantServer) -> None:
    publisher = publisher_for(server.url, max_reply_bytes=1000)
    sent = command()
    server.respond = answer_json(200, event("order.created", sent.saga_id, {"order_id": "x" * 5000}))
    try:
        result = publish_one(publisher, sent)
    finally:
        publisher.close()
    assert isinstance(result, Undelivered) and "larger than 1000 bytes" in result.reason


# ---------------------------------------------------------- 202: the reply comes later


@pytest.mark.parametrize("status", [202, 204])
def test_accepted_is_delivered_without_a_reply(
    server: ParticipantServer, publisher: HttpCommandPublisher, status: int
) -> None:
    server.respond = lambda _command: Answer(status, b"" if status == 204 else b'{"accepted": true}')
    assert publish_one(publisher, command()) == Delivered(reply=None)


# ------------------------------------------------- 408 and 429: not now, not never


@pytest.mark.parametrize("status", [408, 429])
def test_408_and_429_are_transient_not_a_failed_step(
    server: ParticipantServer, publisher: HttpCommandPublisher, status: int
) -> None:
    server.respond = lambda _command: Answer(status, b"slow down")
    result = publish_one(publisher, command())
    assert isinstance(result, Undelivered)
    assert f"answered {status}" in result.reason
    assert result.retry_after is None


@pytest.mark.parametrize("status", [408, 429, 503])
@pytest.mark.parametrize(("header", "wait"), [("7", timedelta(seconds=7)), ("0", timedelta(0))])
def test_a_retry_after_in_seconds_is_passed_to_the_relay(
    server: ParticipantServer, publisher: HttpCommandPublisher, status: int, header: str, wait: timedelta
) -> None:
    server.respond = lambda _command: Answer(status, headers={"Retry-After": header})
    result = publish_one(publisher, command())
    assert isinstance(result, Undelivered) and result.retry_after == wait


@pytest.mark.parametrize(
    ("header", "wait"),
    [
        ("Wed, 28 Nov 2026 12:00:30 GMT", timedelta(seconds=30)),
        ("Wed, 28 Nov 2026 11:00:00 GMT", timedelta(0)),  # already past
        ("99999999999", MAX_RETRY_AFTER),
        ("Sat, 28 Nov 2099 12:00:00 GMT", MAX_RETRY_AFTER),
        ("soon", None),
        ("-5", None),
        ("１０", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_is_read_as_seconds_or_a_date_and_bounded(header: str | None, wait: timedelta | None) -> None:
    assert retry_after(header, now=datetime(2026, 11, 28, 12, tzinfo=UTC)) == wait


# ------------------------------------------------------------ 4xx: the step failed


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 413, 422])
def test_4xx_is_a_rejection_naming_status_and_body(
    server: ParticipantServer, publisher: HttpCommandPublisher, status: int
) -> None:
    server.respond = lambda _command: Answer(status, b"customer   is\n  blocked")
    result = publish_one(publisher, command())
    assert isinstance(result, Rejected)
    assert f"answered {status}" in result.reason
    assert result.reason.endswith("customer is blocked")  # whitespace folded onto one line


def test_a_long_rejection_body_is_cut_short(server: ParticipantServer, publisher: HttpCommandPublisher) -> None:
    server.respond = lambda _command: Answer(422, b"x" * 50_000)
    result = publish_one(publisher, command())
    assert isinstance(result, Rejected)
    assert "xxxx" in result.reason and len(result.reason) < 300


# ------------------------------------------- transient: 5xx, redirects, network


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_is_transient(server: ParticipantServer, publisher: HttpCommandPublisher, status: int) -> None:
    server.respond = answer_json(status, {"error": "busy"})
    result = publish_one(publisher, command())
    assert isinstance(result, Undelivered) and f"answered {status}" in result.reason
    assert len(server.received) == 1  # no hidden retry loop: the relay schedules the next attempt


def test_a_redirect_is_not_followed(server: ParticipantServer, publisher: HttpCommandPublisher) -> None:
    server.respond = lambda _command: Answer(307, headers={"Location": "/elsewhere"})
    result = publish_one(publisher, command())
    assert isinstance(result, Undelivered) and "307" in result.reason
    assert [received.path for received in server.received] == ["/commands"]


def test_a_closed_port_is_transient_and_quick() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    publisher = publisher_for(closed)
    started = time.monotonic()
    try:
        result = publish_one(publisher, command())
    finally:
        publisher.close()
    assert isinstance(result, Undelivered) and "unreachable" in result.reason
    assert time.monotonic() - started < 1.0


def test_a_read_timeout_is_transient(server: ParticipantServer) -> None:
    publisher = publisher_for(server.url, read_timeout=0.2)
    server.respond = lambda _command: Answer(202, delay=1.0)
    started = time.monotonic()
    try:
        result = publish_one(publisher, command())
    finally:
        publisher.close()
    assert isinstance(result, Undelivered) and "Timeout" in result.reason
    assert time.monotonic() - started < 0.9


# ------------------------------------------------------- routing and batches


def test_each_command_goes_to_its_participants_url(server: ParticipantServer) -> None:
    urls = {participant: f"{server.url}/{participant.value}-service/" for participant in Participant}
    publisher = HttpCommandPublisher(urls)
    types = [
        "create_order",
        "get_payment_info",
        "authorize_payment",
        "update_order_status",
        "start_order_timer",
        "cancel_order",
        "revert_payment",
    ]
    try:
        publisher.publish([command(command_type) for command_type in types])
    finally:
        publisher.close()
    paths = {received.body["type"]: received.path for received in server.received}
    assert paths == {
        "create_order": "/order-service/commands",
        "update_order_status": "/order-service/commands",
        "cancel_order": "/order-service/commands",
        "get_payment_info": "/user-service/commands",
        "authorize_payment": "/payment-service/commands",
        "revert_payment": "/payment-service/commands",
        "start_order_timer": "/timer-service/commands",
    }


def test_a_batch_is_sent_in_parallel_and_answered_in_order(
    server: ParticipantServer, publisher: HttpCommandPublisher
) -> None:
    in_flight = 0
    most_in_flight = 0
    lock = threading.Lock()

    def respond(sent: Any) -> Answer:
        nonlocal in_flight, most_in_flight
        with lock:
            in_flight += 1
            most_in_flight = max(most_in_flight, in_flight)
        # Later commands answer sooner, so completion order differs from batch order.
        time.sleep(0.05 * (8 - int(sent["payload"]["customer_id"])))
        with lock:
            in_flight -= 1
        reply = event("order.created", sent["correlation_id"], {"order_id": f"order_{sent['payload']['customer_id']}"})
        return Answer(200, json.dumps(reply).encode())

    server.respond = respond
    batch = [
        Command("create_order", str(uuid.uuid4()), {"customer_id": str(i)}, str(uuid.uuid4()), NOW) for i in range(8)
    ]
    results = publisher.publish(batch)
    # Counted, not timed: sequential sends would never have two requests open at once.
    assert most_in_flight >= 2
    assert all(isinstance(result, Delivered) for result in results), results
    replies = [result.reply for result in results if isinstance(result, Delivered)]
    assert [reply.saga_id for reply in replies if reply] == [sent.saga_id for sent in batch]
    assert [reply.payload["order_id"] for reply in replies if reply] == [f"order_{i}" for i in range(8)]


def test_mixed_answers_in_one_batch_keep_their_places(
    server: ParticipantServer, publisher: HttpCommandPublisher
) -> None:
    statuses = {"create_order": 202, "get_payment_info": 503, "authorize_payment": 422}
    server.respond = lambda sent: Answer(statuses[sent["type"]])
    results = publisher.publish([command("create_order"), command("get_payment_info"), command("authorize_payment")])
    assert [type(result) for result in results] == [Delivered, Undelivered, Rejected]


def test_every_participant_needs_a_url() -> None:
    with pytest.raises(ValueError, match="no service URL for timer"):
        HttpCommandPublisher({p: "http://127.0.0.1:1" for p in Participant if p is not Participant.TIMER})
