"""Step deadlines with a hand-moved clock, SagaPolicy's validation and its backoff."""

from __future__ import annotations

from datetime import timedelta

import pytest
from tests.unit.domain_helpers import (
    NOW,
    ORDER_ID,
    PAYMENT_ID,
    POLICY,
    at,
    completed_saga,
    exhaust_step_deadlines,
    failure_event,
    kinds,
    saga_at,
    start,
    state,
    success_event,
)

from saga.domain.policy import SagaPolicy
from saga.domain.saga import HistoryKind, SagaStatus, Step

TICK = timedelta(microseconds=1)


def test_before_the_deadline_nothing_happens() -> None:
    saga, _command = start()
    before = state(saga)
    history = list(saga.history)

    assert saga.on_deadline(NOW, POLICY) == []
    assert saga.on_deadline(NOW + POLICY.step_deadline - TICK, POLICY) == []

    assert state(saga) == before
    assert saga.history == history
    assert saga.updated_at == NOW


@pytest.mark.parametrize(
    "late", [timedelta(0), timedelta(seconds=1), timedelta(hours=5)], ids=["at", "after", "long-after"]
)
def test_after_the_deadline_the_command_is_resent_with_the_same_message_id(late: timedelta) -> None:
    saga, commands = start()
    original = commands[0]
    when = NOW + POLICY.step_deadline + late

    resent = saga.on_deadline(when, POLICY)

    assert len(resent) == 1
    again = resent[0]
    assert again.type == "create_order"
    assert again.message_id == original.message_id
    assert again.payload == original.payload
    assert again.saga_id == original.saga_id
    assert again.timestamp == when
    assert saga.awaiting is not None
    assert saga.awaiting.attempts == 2
    assert saga.awaiting.message_id == original.message_id
    assert saga.due_at == when + POLICY.step_deadline
    assert saga.status is SagaStatus.STARTED
    assert saga.current_step is Step.CREATE_ORDER
    assert saga.updated_at == when
    assert [(e.kind, e.type, e.message_id) for e in saga.history[-2:]] == [
        (HistoryKind.DEADLINE, "create_order", original.message_id),
        (HistoryKind.COMMAND, "create_order", original.message_id),
    ]
    assert saga.history[-1].detail == "attempt 2"


def test_a_resend_restarts_the_deadline() -> None:
    saga, _ = start()
    first_due = NOW + POLICY.step_deadline
    saga.on_deadline(first_due, POLICY)

    assert saga.on_deadline(first_due + POLICY.step_deadline - TICK, POLICY) == []
    assert saga.awaiting is not None and saga.awaiting.attempts == 2


def test_attempts_grow_with_each_resend() -> None:
    saga, _ = saga_at(Step.AUTHORIZE_PAYMENT)
    attempts = []
    message_ids = set()
    for _ in range(POLICY.step_resends):
        assert saga.due_at is not None
        message_ids |= {c.message_id for c in saga.on_deadline(saga.due_at, POLICY)}
        assert saga.awaiting is not None
        attempts.append(saga.awaiting.attempts)

    assert attempts == [2, 3, 4]
    assert len(message_ids) == 1
    assert saga.status is SagaStatus.STARTED


@pytest.mark.parametrize("resends", [0, 1, 3, 6])
def test_after_step_resends_resends_the_step_fails_and_compensation_starts(resends: int) -> None:
    policy = SagaPolicy(step_resends=resends)
    saga, step_command = saga_at(Step.GET_PAYMENT_INFO, policy)
    sent = []
    for _ in range(resends):
        assert saga.due_at is not None
        sent += saga.on_deadline(saga.due_at, policy)
    assert [c.message_id for c in sent] == [step_command.message_id] * resends
    assert saga.status.value == "STARTED"
    assert saga.due_at is not None
    failed_at = saga.due_at

    compensations = saga.on_deadline(failed_at, policy)

    assert [c.type for c in compensations] == ["cancel_order"]
    assert saga.status is SagaStatus.COMPENSATING
    assert saga.current_step is Step.GET_PAYMENT_INFO
    assert saga.error == f"GET_PAYMENT_INFO failed: no reply after {resends + 1} attempts"
    assert saga.awaiting is not None
    assert saga.awaiting.command_type == "cancel_order"
    assert saga.awaiting.attempts == 1
    assert saga.due_at == failed_at + policy.step_deadline
    # The step's command went out once, then `resends` more times: never more.
    assert kinds(saga, HistoryKind.COMMAND).count("get_payment_info") == resends + 1
    assert kinds(saga, HistoryKind.DEADLINE) == ["get_payment_info"] * (resends + 1)


def test_deadline_failure_of_create_order_is_by_deadline_so_the_order_is_cancelled() -> None:
    saga, _ = start()

    failed = exhaust_step_deadlines(saga)

    assert [c.type for c in failed.commands] == ["cancel_order"]


def test_custom_step_deadline_is_used() -> None:
    policy = SagaPolicy(step_deadline=timedelta(seconds=5))
    saga, _ = start(policy)

    assert saga.due_at == NOW + timedelta(seconds=5)
    assert saga.on_deadline(at(4.999999), policy) == []
    assert len(saga.on_deadline(at(5), policy)) == 1


@pytest.mark.parametrize("step", [Step.GET_PAYMENT_INFO, Step.UPDATE_ORDER_STATUS, Step.START_TIMER])
def test_a_late_reply_naming_no_resource_after_the_deadline_failure_changes_nothing(step: Step) -> None:
    saga, _ = saga_at(step)
    failed = exhaust_step_deadlines(saga)
    before = state(saga)
    ignored_before = saga.ignored_events
    history_length = len(saga.history)
    late = success_event(step, failed.now + timedelta(seconds=1), message_id="late-1")

    assert saga.handle(late, failed.now + timedelta(seconds=1), POLICY) == []

    assert state(saga) == before
    assert saga.ignored_events == ignored_before + 1
    assert len(saga.history) == history_length + 1
    entry = saga.history[-1]
    assert (entry.kind, entry.type, entry.message_id) == (HistoryKind.IGNORED, late.type, "late-1")
    assert entry.at == failed.now + timedelta(seconds=1)


def test_a_late_failure_reply_after_the_deadline_failure_changes_nothing() -> None:
    saga, _ = saga_at(Step.START_TIMER)
    exhaust_step_deadlines(saga)
    before = state(saga)

    assert saga.handle(failure_event(Step.START_TIMER), at(999), POLICY) == []

    assert state(saga) == before
    assert saga.ignored_events == 1
    assert saga.history[-1].kind is HistoryKind.IGNORED


def test_late_order_created_after_deadline_failure_resends_the_waiting_cancel_with_its_id() -> None:
    saga, _ = start()
    failed = exhaust_step_deadlines(saga)
    cancel = failed.commands[0]
    assert cancel.payload["order_id"] is None

    resent = saga.handle(success_event(Step.CREATE_ORDER), at(999), POLICY)

    assert [(c.type, c.payload["order_id"]) for c in resent] == [("cancel_order", ORDER_ID)]
    assert resent[0].message_id != cancel.message_id
    assert saga.order_id is None  # the saga never went on with this order
    assert saga.awaiting is not None and saga.awaiting.message_id == resent[0].message_id
    assert saga.status is SagaStatus.COMPENSATING


def test_late_payment_authorized_after_deadline_failure_resends_the_waiting_revert_with_its_id() -> None:
    saga, _ = saga_at(Step.AUTHORIZE_PAYMENT)
    failed = exhaust_step_deadlines(saga)
    assert [(c.type, c.payload["payment_id"]) for c in failed.commands] == [("revert_payment", None)]

    resent = saga.handle(success_event(Step.AUTHORIZE_PAYMENT), at(999), POLICY)

    assert [(c.type, c.payload["payment_id"]) for c in resent] == [("revert_payment", PAYMENT_ID)]
    assert saga.payment_id is None


def test_a_reply_before_the_deadline_stops_the_resends() -> None:
    saga, _ = start()
    saga.handle(success_event(Step.CREATE_ORDER), NOW + POLICY.step_deadline - TICK, POLICY)

    commands = saga.on_deadline(NOW + POLICY.step_deadline, POLICY)

    assert commands == []
    assert saga.current_step is Step.GET_PAYMENT_INFO


def test_a_reply_to_a_resent_command_is_applied() -> None:
    saga, _ = start()
    saga.on_deadline(NOW + POLICY.step_deadline, POLICY)

    commands = saga.handle(success_event(Step.CREATE_ORDER), at(31), POLICY)

    assert [c.type for c in commands] == ["get_payment_info"]
    assert saga.awaiting is not None and saga.awaiting.attempts == 1


def test_deadline_of_an_ended_saga_does_nothing() -> None:
    saga = completed_saga()
    before = state(saga)

    assert saga.on_deadline(at(10_000), POLICY) == []
    assert state(saga) == before
    assert saga.due_at is None


# ----------------------------------------------------------------- SagaPolicy


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"step_deadline": timedelta(0)}, "step deadline must be positive"),
        ({"step_deadline": timedelta(seconds=-1)}, "step deadline must be positive"),
        ({"step_resends": -1}, "step re-sends must not be negative"),
        ({"compensation_attempts": 0}, "compensation attempts must be at least 1"),
        ({"compensation_attempts": -3}, "compensation attempts must be at least 1"),
        ({"compensation_backoff": timedelta(seconds=-1)}, "compensation backoff must not be negative"),
        ({"order_timer": timedelta(0)}, "order timer must be positive"),
        ({"order_timer": timedelta(minutes=-30)}, "order timer must be positive"),
    ],
)
def test_policy_rejects_bad_values(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        SagaPolicy(**kwargs)  # type: ignore[arg-type]
    assert str(caught.value) == message


def test_policy_accepts_edge_values() -> None:
    policy = SagaPolicy(step_resends=0, compensation_attempts=1, compensation_backoff=timedelta(0))

    assert policy.step_resends == 0
    assert policy.backoff(5) == timedelta(0)


def test_policy_defaults() -> None:
    assert SagaPolicy() == SagaPolicy(
        step_deadline=timedelta(seconds=30),
        step_resends=3,
        compensation_attempts=5,
        compensation_backoff=timedelta(seconds=1),
        order_timer=timedelta(minutes=30),
        default_currency="USD",
    )


@pytest.mark.parametrize(
    ("attempts", "expected"),
    [(0, 1), (1, 1), (2, 2), (3, 4), (4, 8), (5, 16), (10, 512)],
)
def test_backoff_doubles_with_each_attempt(attempts: int, expected: int) -> None:
    assert SagaPolicy().backoff(attempts) == timedelta(seconds=expected)


def test_backoff_scales_with_the_base() -> None:
    policy = SagaPolicy(compensation_backoff=timedelta(milliseconds=250))

    assert [policy.backoff(n) for n in (1, 2, 3)] == [
        timedelta(milliseconds=250),
        timedelta(milliseconds=500),
        timedelta(seconds=1),
    ]
