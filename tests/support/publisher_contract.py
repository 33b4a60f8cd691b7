"""The command publisher port's contract, held against every transport: in-memory, HTTP, Kafka, timer-api.

A test class subclasses `PublisherContract` and provides two fixtures:

- `reachable`: a `PublisherUnderTest` whose participant (or broker) takes every command,
  with `received(expected)` returning the `order_id` of each command the far side got;
- `unreachable`: a publisher whose participant or broker cannot be reached.

`carries` names the command types the transport takes (the timer API takes only
`start_order_timer`). What every transport must do (docs/contract.md, "HTTP fallback
transport", "Transport per participant"): one result per command, in order; a delivery
problem is an `Undelivered` result, never an exception; a re-sent command goes out
again; a reply that comes back with a delivery answers the command's own saga.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from saga.domain.messages import Command, new_message_id
from saga.ports.messaging import CommandPublisher, Delivered, Undelivered

ALL_COMMANDS = (
    "create_order",
    "get_payment_info",
    "authorize_payment",
    "update_order_status",
    "start_order_timer",
    "cancel_order",
    "revert_payment",
)
UNREACHABLE_WITHIN_SECONDS = 15.0


def contract_command(command_type: str, saga_id: str | None = None) -> Command:
    """A command whose payload names a fresh `order_id`, by which the far side's copy is recognised."""
    order_id = f"order-{uuid.uuid4().hex[:12]}"
    payload: dict[str, Any] = {"order_id": order_id, "customer_id": "cust_contract", "saga_id": saga_id}
    return Command(command_type, saga_id or str(uuid.uuid4()), payload, new_message_id(), datetime.now(UTC))


@dataclass
class PublisherUnderTest:
    publisher: CommandPublisher
    received: Callable[[int], list[str]]
    """Order ids of the commands the far side got, waiting (where delivery is asynchronous)
    until at least `expected` arrived or a timeout passed."""


class PublisherContract:
    carries: ClassVar[tuple[str, ...]] = ALL_COMMANDS

    def test_an_empty_batch_gives_no_results(self, reachable: PublisherUnderTest) -> None:
        assert reachable.publisher.publish([]) == []

    def test_each_command_gets_one_result_in_order_and_reaches_its_participant(
        self, reachable: PublisherUnderTest
    ) -> None:
        commands = [contract_command(command_type) for command_type in self.carries for _ in range(2)]
        results = reachable.publisher.publish(commands)
        assert len(results) == len(commands)
        assert all(isinstance(result, Delivered) for result in results), results
        expected = sorted(str(command.payload["order_id"]) for command in commands)
        assert sorted(reachable.received(len(commands))) == expected

    def test_a_reply_that_comes_with_the_delivery_answers_the_commands_saga(
        self, reachable: PublisherUnderTest
    ) -> None:
        commands = [contract_command(command_type) for command_type in self.carries]
        for command, result in zip(commands, reachable.publisher.publish(commands), strict=True):
            assert isinstance(result, Delivered)
            if result.reply is not None:
                assert result.reply.saga_id == command.saga_id
                assert result.reply.type.split(".")[0] == command.participant.value

    def test_a_resent_command_goes_out_again(self, reachable: PublisherUnderTest) -> None:
        command = contract_command(self.carries[0])
        assert isinstance(reachable.publisher.publish([command])[0], Delivered)
        assert isinstance(reachable.publisher.publish([command])[0], Delivered)
        assert reachable.received(2) == [command.payload["order_id"]] * 2

    def test_healthy_is_none_while_the_participant_is_reachable(self, reachable: PublisherUnderTest) -> None:
        reachable.publisher.publish([contract_command(self.carries[0])])
        assert reachable.publisher.healthy() is None

    def test_an_unreachable_participant_is_undelivered_never_an_exception(self, unreachable: CommandPublisher) -> None:
        commands = [contract_command(command_type) for command_type in self.carries]
        started = time.monotonic()
        results = unreachable.publish(commands)
        assert time.monotonic() - started < UNREACHABLE_WITHIN_SECONDS
        assert len(results) == len(commands)
        assert all(isinstance(result, Undelivered) and result.reason for result in results), results
        health = unreachable.healthy()
        assert health is None or isinstance(health, str)

    def test_close_after_use_does_not_raise(self, reachable: PublisherUnderTest) -> None:
        reachable.publisher.publish([contract_command(self.carries[0])])
        reachable.publisher.close()


class RecordingServer(ThreadingHTTPServer):
    """A participant over HTTP that takes everything: `POST /commands` answers 202, `POST /StartTimer` 200.
    `order_ids` lists what it got, from either body shape."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _RecordingHandler)
        self.order_ids: list[str] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def received(self, expected: int) -> list[str]:
        with self.lock:
            return list(self.order_ids)


class _RecordingHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: RecordingServer

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        if self.path == "/StartTimer":
            order_id, status = body.get("OrderId"), 200
        else:
            order_id, status = body.get("payload", {}).get("order_id"), 202
        with self.server.lock:
            self.server.order_ids.append(str(order_id))
        answer = b'{"success": true}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def recording_server() -> Iterator[RecordingServer]:
    server = RecordingServer()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
