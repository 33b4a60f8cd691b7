"""The saga's timing rules are bounded: a capped compensation backoff, and no date that can overflow."""

from __future__ import annotations

import sys
from datetime import timedelta

import pytest

from saga.adapters.simulated_participants import SimulatedParticipants
from saga.domain.policy import LONGEST_BACKOFF, LONGEST_WAIT, SagaPolicy
from saga.domain.saga import SagaStatus
from saga.testing import SagaHarness

BURGER = {"foodItems": [{"name": "Burger", "price": 12.99, "quantity": 1}]}


def test_backoff_doubles_until_the_cap_and_stays_there() -> None:
    policy = SagaPolicy(compensation_backoff=timedelta(seconds=1), compensation_backoff_max=timedelta(seconds=10))

    assert [policy.backoff(n).total_seconds() for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]


@pytest.mark.parametrize("attempts", [38, 60, 1000, 10**6, sys.maxsize])
def test_backoff_never_overflows_whatever_the_attempt_count(attempts: int) -> None:
    policy = SagaPolicy(compensation_backoff=LONGEST_BACKOFF, compensation_backoff_max=LONGEST_BACKOFF)

    assert policy.backoff(attempts) == LONGEST_BACKOFF
    assert SagaPolicy().backoff(attempts) == SagaPolicy().compensation_backoff_max


def test_no_backoff_stays_no_backoff() -> None:
    assert SagaPolicy(compensation_backoff=timedelta(0)).backoff(sys.maxsize) == timedelta(0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"step_deadline": LONGEST_WAIT + timedelta(seconds=1)}, "step deadline must be at most"),
        ({"order_timer": timedelta(minutes=5e9)}, "order timer must be at most"),
        ({"step_resends": 101}, "step re-sends must be at most 100"),
        ({"compensation_attempts": 1001}, "compensation attempts must be at most 1000"),
        ({"compensation_backoff": timedelta(days=2)}, "compensation backoff must be at most"),
        ({"compensation_backoff_max": timedelta(days=2)}, "compensation backoff cap must be between"),
        ({"compensation_backoff_max": timedelta(seconds=-1)}, "compensation backoff cap must be between"),
    ],
)
def test_policy_refuses_values_past_their_bounds(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SagaPolicy(**kwargs)  # type: ignore[arg-type]


def test_sixty_rejected_cancellations_end_in_compensation_failed_without_overflow() -> None:
    policy = SagaPolicy(compensation_attempts=60)
    rejecting_order_service = SimulatedParticipants(fail_step="CANCEL_ORDER").handle
    harness = SagaHarness(participants={"order": rejecting_order_service}, fail_step="AUTHORIZE_PAYMENT", policy=policy)

    saga_id = harness.start_order("cust_1", BURGER)
    for _ in range(80):
        if harness.saga(saga_id).status is not SagaStatus.COMPENSATING:
            break
        harness.advance(policy.compensation_backoff_max)

    assert harness.saga(saga_id).status is SagaStatus.COMPENSATION_FAILED
    assert [c["type"] for c in harness.sent].count("cancel_order") == 60
