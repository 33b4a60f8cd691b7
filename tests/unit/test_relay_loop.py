"""The relay's loop looks at the outbox when a command it put back is due again, not only at its poll."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from datetime import timedelta
from functools import partial

from saga.adapters.clock import ManualClock, SystemClock
from saga.adapters.memory_store import InMemoryStore, InMemoryUnitOfWork
from saga.domain.messages import Command
from saga.domain.policy import SagaPolicy
from saga.entrypoints.worker import BackgroundWorker
from saga.ports.clock import Clock
from saga.ports.messaging import CommandPublisher, Delivered, SendResult, Undelivered
from saga.service_layer.metrics import Metrics
from saga.service_layer.orchestrator import SagaOrchestrator
from saga.service_layer.relay import OutboxRelay
from saga.service_layer.relay_queue import RelayQueue

ORDER = {"foodItems": [{"price": 1, "quantity": 1}]}
RETRY_BASE = timedelta(milliseconds=50)


class DownOnce(CommandPublisher):
    """The first send finds the broker down; every later one is delivered."""

    def __init__(self) -> None:
        self.sends: list[str] = []
        self.delivered = threading.Event()

    def publish(self, commands: Sequence[Command]) -> list[SendResult]:
        results: list[SendResult] = []
        for command in commands:
            first = not self.sends
            self.sends.append(command.type)
            results.append(Undelivered("broker down", transport_down=True) if first else Delivered())
        if len(self.sends) > 1:
            self.delivered.set()
        return results


def relay_over(clock: Clock, dispatch: RelayQueue | None = None) -> tuple[OutboxRelay, SagaOrchestrator, DownOnce]:
    uow_factory = partial(InMemoryUnitOfWork, InMemoryStore())
    metrics = Metrics()
    orchestrator = SagaOrchestrator(uow_factory, clock, SagaPolicy(), metrics, dispatch=dispatch)
    publisher = DownOnce()
    relay = OutboxRelay(uow_factory, publisher, orchestrator, clock, metrics, dispatch=dispatch, retry_base=RETRY_BASE)
    return relay, orchestrator, publisher


def test_the_relay_knows_when_what_it_put_back_is_due() -> None:
    clock = ManualClock()
    relay, orchestrator, publisher = relay_over(clock)
    orchestrator.start("cust_1", ORDER)
    assert relay.seconds_to_retry() is None

    assert relay.send_due() == 1  # the broker is down: put back
    retry_in = relay.seconds_to_retry()
    assert retry_in is not None and 0 < retry_in <= RETRY_BASE.total_seconds()
    clock.advance(RETRY_BASE)
    assert relay.seconds_to_retry() == 0.0

    assert relay.send_due() == 1
    assert publisher.sends == ["create_order", "create_order"]
    assert relay.seconds_to_retry() is None


def test_a_command_put_back_goes_again_when_due_not_at_the_next_poll() -> None:
    queue = RelayQueue()
    relay, orchestrator, publisher = relay_over(SystemClock(), queue)
    worker = BackgroundWorker(relay, orchestrator, queue.ready, [], relay_poll_seconds=60, sweep_interval_seconds=60)
    worker.start(relay_only=True)
    try:
        began = time.monotonic()
        orchestrator.start("cust_1", ORDER)
        assert publisher.delivered.wait(10), "the re-send waited for the poll, a minute away"
        assert time.monotonic() - began < 10
    finally:
        worker.stop()
    assert publisher.sends == ["create_order", "create_order"]
