"""The timer-api transport against a real HTTP server on loopback: its body, and each answer it may meet."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from saga.adapters.timer_api_publisher import TimerApiPublisher
from saga.domain.messages import Command, new_message_id
from saga.ports.messaging import Delivered, Rejected, Undelivered


class TimerServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), TimerHandler)
        self.status = 200
        self.body = b'{"message": "Timer started"}'
        self.delay = 0.0
        self.requests: list[tuple[str, str, Any]] = []

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up waiting is expected here

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class TimerHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: TimerServer

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.requests.append((self.path, self.headers.get("Content-Type", ""), json.loads(raw)))
        if self.server.delay:
            time.sleep(self.server.delay)
        self.send_response(self.server.status)
        self.send_header("Content-Length", str(len(self.server.body)))
        self.end_headers()
        self.wfile.write(self.server.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[TimerServer]:
    timer = TimerServer()
    thread = threading.Thread(target=timer.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield timer
    timer.shutdown()
    timer.server_close()


def start_timer(order_id: str = "order-1") -> Command:
    payload = {"order_id": order_id, "customer_id": "cust_1", "timeout_at": "2026-11-28T12:30:00.000000+00:00"}
    return Command("start_order_timer", str(uuid.uuid4()), payload, new_message_id(), datetime.now(UTC))


def test_it_posts_the_platforms_body_to_start_timer_and_a_2xx_stands_for_timer_started(server: TimerServer) -> None:
    publisher = TimerApiPublisher(server.url + "/")
    command = start_timer("order-42")
    for status, body in [(200, b"not json at all"), (201, b""), (204, b"")]:
        server.status, server.body = status, body
        [result] = publisher.publish([command])
        assert isinstance(result, Delivered) and result.reply is not None
        assert result.reply.type == "timer.started" and result.reply.saga_id == command.saga_id
    assert server.requests[0] == (
        "/StartTimer",
        "application/json",
        {"OrderId": "order-42", "CustomerId": "cust_1", "RunnerId": ""},
    )
    publisher.close()


@pytest.mark.parametrize("status", [400, 404, 409, 422, 302])
def test_another_answer_stands_for_timer_failed(server: TimerServer, status: int) -> None:
    server.status, server.body = status, b'{"error": "Runner assignment is closed"}'
    [result] = TimerApiPublisher(server.url).publish([start_timer()])
    assert isinstance(result, Rejected)
    assert str(status) in result.reason and "Runner assignment is closed" in result.reason


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503])
def test_transient_answers_are_sent_again(server: TimerServer, status: int) -> None:
    server.status = status
    [result] = TimerApiPublisher(server.url).publish([start_timer()])
    assert isinstance(result, Undelivered) and str(status) in result.reason and not result.transport_down


def test_no_answer_within_the_read_timeout_is_sent_again(server: TimerServer) -> None:
    server.delay = 1.0
    started = time.monotonic()
    [result] = TimerApiPublisher(server.url, read_timeout=0.2).publish([start_timer()])
    assert isinstance(result, Undelivered) and "Timeout" in result.reason
    assert time.monotonic() - started < 1.0


def test_a_batch_goes_out_in_parallel_with_one_result_each(server: TimerServer) -> None:
    server.delay = 0.3
    publisher = TimerApiPublisher(server.url, max_parallel=4)
    started = time.monotonic()
    results = publisher.publish([start_timer(f"order-{i}") for i in range(4)])
    assert time.monotonic() - started < 1.0
    assert [type(result) for result in results] == [Delivered] * 4
    publisher.close()


def test_a_command_that_is_not_the_timers_is_refused_without_a_request(server: TimerServer) -> None:
    command = Command("create_order", str(uuid.uuid4()), {}, new_message_id(), datetime.now(UTC))
    [result] = TimerApiPublisher(server.url).publish([command])
    assert isinstance(result, Rejected) and server.requests == []


def test_a_url_that_is_not_http_is_refused() -> None:
    with pytest.raises(ValueError, match="http"):
        TimerApiPublisher("ftp://timer")
