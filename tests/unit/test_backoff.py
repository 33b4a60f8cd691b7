"""One backoff for every loop: capped, jittered, reset by a success; an outage logged twice, not per attempt."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta
from functools import partial

import pytest

from saga.adapters.clock import ManualClock
from saga.adapters.memory_store import InMemoryStore, InMemoryUnitOfWork
from saga.domain.messages import Command
from saga.domain.policy import SagaPolicy
from saga.ports.messaging import CommandPublisher, SendResult, Undelivered
from saga.ports.persistence import StorageUnavailable
from saga.service_layer.backoff import FIRST_PAUSE_SECONDS, Backoff, Outage, pause_after
from saga.service_layer.metrics import Metrics
from saga.service_layer.orchestrator import SagaOrchestrator
from saga.service_layer.relay import OutboxRelay


def test_pauses_grow_within_a_doubling_window_and_never_pass_the_cap() -> None:
    backoff = Backoff(cap_seconds=2.0)
    pauses = [backoff.next_pause() for _ in range(200)]

    for failure, pause in enumerate(pauses, start=1):
        window = min(2.0, FIRST_PAUSE_SECONDS * 2 ** (failure - 1))
        assert FIRST_PAUSE_SECONDS <= pause <= window
    assert len({round(p, 6) for p in pauses[10:]}) > 1  # jittered: loops that failed together spread out
    assert max(pauses) <= 2.0


def test_a_success_starts_the_pauses_over() -> None:
    backoff = Backoff(cap_seconds=60.0)
    for _ in range(20):
        backoff.next_pause()
    backoff.reset()

    assert backoff.next_pause() == pytest.approx(FIRST_PAUSE_SECONDS)


def test_a_cap_below_the_first_pause_is_the_pause() -> None:
    assert Backoff(cap_seconds=0.05).next_pause() == pytest.approx(0.05)


def test_an_outage_is_logged_when_it_starts_and_when_it_ends_with_the_count(caplog: pytest.LogCaptureFixture) -> None:
    outage = Outage("relay loop", logging.getLogger("test.outage"))
    with caplog.at_level(logging.INFO, logger="test.outage"):
        outage.succeeded()  # nothing to say while nothing failed
        for _ in range(50):
            outage.failed(StorageUnavailable("OperationalError: connection refused\nmore driver text"), 0.5)
        outage.succeeded()
        outage.succeeded()

    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 2, lines
    assert lines[0] == (
        "relay loop failing: StorageUnavailable: OperationalError: connection refused; "
        "retrying with backoff, next in 0.5s"
    )
    assert lines[1].startswith("relay loop working again after 50 failed attempt(s) over ")
    assert all(record.exc_info is None for record in caplog.records)  # an outage is not a fault: no traceback


def test_an_unexpected_error_is_logged_once_with_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    outage = Outage("sweeper loop", logging.getLogger("test.outage"))
    with caplog.at_level(logging.INFO, logger="test.outage"):
        for _ in range(3):
            try:
                raise KeyError("bug")
            except KeyError as error:
                outage.failed(error, 1.0)

    assert len(caplog.records) == 1 and caplog.records[0].exc_info is not None


def test_a_pause_after_any_number_of_failures_stays_within_the_first_pause_and_the_cap() -> None:
    pauses = [pause_after(failures, cap_seconds=30.0) for failures in (1, 2, 16, 1_000, 100_000)]

    assert pauses[0] == pytest.approx(FIRST_PAUSE_SECONDS)
    assert all(FIRST_PAUSE_SECONDS <= pause <= 30.0 for pause in pauses)


class NeverDelivered(CommandPublisher):
    def __init__(self) -> None:
        self.sends = 0

    def publish(self, commands: Sequence[Command]) -> list[SendResult]:
        self.sends += len(commands)
        return [Undelivered("participant down") for _ in commands]


def test_the_relay_re_sends_an_undelivered_command_within_the_shared_backoff_window() -> None:
    clock = ManualClock()
    uow_factory = partial(InMemoryUnitOfWork, InMemoryStore())
    orchestrator = SagaOrchestrator(uow_factory, clock, SagaPolicy(), Metrics())
    orchestrator.start("cust_1", {"foodItems": [{"price": 1, "quantity": 1}]})
    publisher = NeverDelivered()
    relay = OutboxRelay(uow_factory, publisher, orchestrator, clock, Metrics(), give_up_after=timedelta(hours=2))
    step = timedelta(milliseconds=10)

    assert relay.send_due() == 1
    for failure in range(1, 8):
        window = timedelta(seconds=min(30.0, FIRST_PAUSE_SECONDS * 2 ** (failure - 1)))
        waited = timedelta(0)
        while relay.send_due() == 0:
            assert waited <= window, f"no re-send within {window} after failure {failure}"
            clock.advance(step)
            waited += step
        assert waited >= timedelta(seconds=FIRST_PAUSE_SECONDS)
    assert publisher.sends == 8
