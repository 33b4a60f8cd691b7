"""One backoff for every loop: capped, jittered, reset by a success; an outage logged twice, not per attempt."""

from __future__ import annotations

import logging

import pytest

from saga.ports.persistence import StorageUnavailable
from saga.service_layer.backoff import FIRST_PAUSE_SECONDS, Backoff, Outage


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
