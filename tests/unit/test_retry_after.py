"""A participant's `Retry-After` holds the outbox relay back at least that long
(docs/contract.md, "HTTP fallback transport": 408, 429 and 5xx re-sent, a `Retry-After` honoured)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from saga.adapters.clock import ManualClock
from saga.adapters.memory_store import InMemoryStore, InMemoryUnitOfWork
from saga.adapters.timer_api_publisher import TimerApiPublisher
from saga.domain.messages import Command
from saga.domain.policy import SagaPolicy
from saga.ports.messaging import CommandPublisher, Delivered, SendResult, Undelivered
from saga.service_layer.metrics import Metrics
from saga.service_layer.orchestrator import SagaOrchestrator
from saga.service_layer.relay import OutboxRelay

NOW = datetime(2026, 11, 28, 12, tzinfo=UTC)


class BusyThenFine(CommandPublisher):
    """Answers the first send with 429 and `Retry-After: wait`, every later one with success."""

    def __init__(self, wait: timedelta) -> None:
        self.wait = wait
        self.sends: list[str] = []

    def publish(self, commands: Sequence[Command]) -> list[SendResult]:
        results: list[SendResult] = []
        for command in commands:
            first = not self.sends
            self.sends.append(command.type)
            results.append(Undelivered("answered 429", retry_after=self.wait) if first else Delivered())
        return results


def relay_and_clock(wait: timedelta) -> tuple[OutboxRelay, BusyThenFine, ManualClock]:
    clock = ManualClock()
    metrics = Metrics()
    uow_factory = partial(InMemoryUnitOfWork, InMemoryStore())
    orchestrator = SagaOrchestrator(uow_factory, clock, SagaPolicy(), metrics)
    orchestrator.start("cust_1", {"foodItems": [{"price": 1, "quantity": 1}]})
    publisher = BusyThenFine(wait)
    relay = OutboxRelay(uow_factory, publisher, orchestrator, clock, metrics, give_up_after=timedelta(hours=2))
    return relay, publisher, clock


def test_the_relay_waits_as_long_as_retry_after_asks() -> None:
    relay, publisher, clock = relay_and_clock(timedelta(seconds=20))

    assert relay.send_due() == 1
    clock.advance(timedelta(seconds=19))
    assert relay.send_due() == 0  # its own backoff alone would have re-sent after at most 0.2 s
    clock.advance(timedelta(seconds=1))
    assert relay.send_due() == 1

    assert publisher.sends == ["create_order", "create_order"]


def test_a_zero_retry_after_leaves_the_relays_own_backoff() -> None:
    relay, publisher, clock = relay_and_clock(timedelta(0))

    relay.send_due()
    clock.advance(timedelta(milliseconds=200))

    assert relay.send_due() == 1
    assert len(publisher.sends) == 2


class BusyTimerApi(ThreadingHTTPServer):
    """The platform's timer API answering 429 with a Retry-After."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), BusyHandler)


class BusyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(429)
        self.send_header("Retry-After", "12")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_the_timer_api_passes_its_retry_after_to_the_relay() -> None:
    server = BusyTimerApi()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    publisher = TimerApiPublisher(f"http://127.0.0.1:{server.server_address[1]}")
    command = Command("start_order_timer", str(uuid.uuid4()), {"order_id": "o-1", "customer_id": "c"}, "m-1", NOW)
    try:
        [result] = publisher.publish([command])
    finally:
        publisher.close()
        server.shutdown()
    assert isinstance(result, Undelivered) and result.retry_after == timedelta(seconds=12)
