"""Every row of the compensation table (docs/contract.md, "What a failure undoes"), and how compensations are confirmed,
rejected, re-sent and given up on."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from tests.unit.domain_helpers import (
    ORDER_ID,
    PAYMENT_ID,
    POLICY,
    SAGA_ID,
    at,
    completed_saga,
    event,
    exhaust_step_deadlines,
    failure_event,
    kinds,
    saga_at,
    state,
)

from saga.domain.messages import Command
from saga.domain.policy import SagaPolicy
from saga.domain.saga import (
    STEPS,
    Compensation,
    CreateOrderSaga,
    HistoryKind,
    NotCancellable,
    SagaStatus,
    Step,
    UndoStatus,
    compensation_plan,
)

CONFIRMATION = {"revert_payment": "payment.released", "cancel_order": "order.cancelled"}
REJECTION = {"revert_payment": "payment.release_failed", "cancel_order": "order.cancellation_failed"}

# docs/contract.md, "What a failure undoes": (failed step, by deadline?) -> compensations sent, in order.
TABLE = [
    (Step.CREATE_ORDER, False, []),
    (Step.CREATE_ORDER, True, ["cancel_order"]),
    (Step.GET_PAYMENT_INFO, False, ["cancel_order"]),
    (Step.GET_PAYMENT_INFO, True, ["cancel_order"]),
    (Step.AUTHORIZE_PAYMENT, False, ["cancel_order"]),
    (Step.AUTHORIZE_PAYMENT, True, ["revert_payment", "cancel_order"]),
    (Step.UPDATE_ORDER_STATUS, False, ["revert_payment", "cancel_order"]),
    (Step.UPDATE_ORDER_STATUS, True, ["revert_payment", "cancel_order"]),
    (Step.START_TIMER, False, ["revert_payment", "cancel_order"]),
    (Step.START_TIMER, True, ["revert_payment", "cancel_order"]),
]
TABLE_IDS = [f"{step.value}-{'deadline' if by_deadline else 'event'}" for step, by_deadline, _ in TABLE]


def fail(step: Step, by_deadline: bool, policy: SagaPolicy = POLICY) -> tuple[CreateOrderSaga, list[Command], datetime]:
    """A saga whose `step` failed: by its failure event, or by its deadline after the re-sends."""
    saga, _ = saga_at(step, policy)
    if by_deadline:
        failed = exhaust_step_deadlines(saga, policy)
        return saga, failed.commands, failed.now
    when = at(5)
    return saga, saga.handle(failure_event(step, "participant said no", when), when, policy), when


def single(commands: list[Command]) -> Command:
    assert len(commands) == 1, commands
    return commands[0]


@pytest.mark.parametrize(("step", "by_deadline", "expected"), TABLE, ids=TABLE_IDS)
def test_compensation_plan_matches_the_table(step: Step, by_deadline: bool, expected: list[str]) -> None:
    assert [c.value.lower() for c in compensation_plan(step, by_deadline)] == expected


def test_compensation_plan_lists_revert_before_cancel() -> None:
    assert compensation_plan(Step.START_TIMER, False) == [Compensation.REVERT_PAYMENT, Compensation.CANCEL_ORDER]


@pytest.mark.parametrize(("step", "by_deadline", "expected"), TABLE, ids=TABLE_IDS)
def test_failure_sends_the_tables_compensations_in_reverse_order_and_ends_failed(
    step: Step, by_deadline: bool, expected: list[str]
) -> None:
    saga, commands, failed_at = fail(step, by_deadline)
    error = saga.error
    assert error is not None and error.startswith(f"{step.value} failed")
    if by_deadline:
        assert "no reply" in error
    else:
        assert "participant said no" in error

    sent: list[Command] = []
    when = failed_at
    while commands:
        command = single(commands)
        sent.append(command)
        assert saga.status is SagaStatus.COMPENSATING
        assert saga.awaiting is not None and saga.awaiting.message_id == command.message_id
        assert saga.completed_at is None
        when += timedelta(seconds=1)
        commands = saga.handle(event(CONFIRMATION[command.type], {}, when), when, POLICY)

    assert [c.type for c in sent] == expected
    assert saga.status is SagaStatus.FAILED
    assert saga.completed_at == (when if expected else failed_at)
    assert saga.awaiting is None
    assert saga.pending_compensations == []
    assert saga.error == error
    assert saga.current_step is step
    assert kinds(saga, HistoryKind.STATUS) == ["COMPENSATING", "FAILED"]


@pytest.mark.parametrize(("step", "by_deadline", "expected"), TABLE, ids=TABLE_IDS)
def test_compensation_payloads(step: Step, by_deadline: bool, expected: list[str]) -> None:
    saga, commands, failed_at = fail(step, by_deadline)
    reason = saga.error
    step_message_ids = {
        e.message_id for e in saga.history if e.kind is HistoryKind.COMMAND and e.type not in CONFIRMATION
    }
    order_known = STEPS.index(step) > STEPS.index(Step.CREATE_ORDER)
    payment_known = STEPS.index(step) > STEPS.index(Step.AUTHORIZE_PAYMENT)

    payloads = {}
    message_ids = []
    when = failed_at
    while commands:
        command = single(commands)
        assert command.saga_id == SAGA_ID
        assert command.timestamp == when
        payloads[command.type] = command.payload
        message_ids.append(command.message_id)
        when += timedelta(seconds=1)
        commands = saga.handle(event(CONFIRMATION[command.type], {}, when), when, POLICY)

    assert set(payloads) == set(expected)
    if "cancel_order" in payloads:
        assert payloads["cancel_order"] == {
            "order_id": ORDER_ID if order_known else None,
            "saga_id": SAGA_ID,
            "reason": reason,
        }
    if "revert_payment" in payloads:
        assert payloads["revert_payment"] == {
            "payment_id": PAYMENT_ID if payment_known else None,
            "order_id": ORDER_ID,
            "saga_id": SAGA_ID,
            "reason": reason,
        }
    # Each compensation is a new message, not a re-send of a step's command.
    assert len(set(message_ids)) == len(message_ids)
    assert len(step_message_ids) == STEPS.index(step) + 1
    assert not set(message_ids) & step_message_ids


def test_create_order_by_deadline_cancels_with_unknown_order_id() -> None:
    _saga, commands, _ = fail(Step.CREATE_ORDER, True)

    command = single(commands)
    assert command.type == "cancel_order"
    assert command.payload["order_id"] is None
    assert command.payload["saga_id"] == SAGA_ID


def test_authorize_payment_by_deadline_reverts_with_unknown_payment_id() -> None:
    _saga, commands, _ = fail(Step.AUTHORIZE_PAYMENT, True)

    command = single(commands)
    assert command.type == "revert_payment"
    assert command.payload["payment_id"] is None
    assert command.payload["order_id"] == ORDER_ID


def test_order_status_other_than_created_fails_like_update_order_status() -> None:
    saga, _ = saga_at(Step.UPDATE_ORDER_STATUS)

    commands = saga.handle(event("order.status_updated", {"status": "CANCELLED"}), at(1), POLICY)

    assert single(commands).type == "revert_payment"
    assert [undo.compensation for undo in saga.pending_compensations] == [
        Compensation.REVERT_PAYMENT,
        Compensation.CANCEL_ORDER,
    ]
    assert saga.status is SagaStatus.COMPENSATING


def test_history_records_the_compensations_and_their_confirmations() -> None:
    saga, commands, _ = fail(Step.START_TIMER, False)
    revert = single(commands)
    cancel = single(saga.handle(event("payment.released", {}, at(6), "r-1"), at(6), POLICY))
    saga.handle(event("order.cancelled", {}, at(7), "c-1"), at(7), POLICY)

    tail = [(e.at, e.kind, e.type, e.message_id) for e in saga.history[-9:]]
    assert tail == [
        (at(5), HistoryKind.EVENT, "timer.failed", tail[0][3]),
        (at(5), HistoryKind.STATUS, "COMPENSATING", None),
        (at(5), HistoryKind.COMMAND, "revert_payment", revert.message_id),
        (at(6), HistoryKind.EVENT, "payment.released", "r-1"),
        (at(6), HistoryKind.COMPENSATION, "revert_payment", None),
        (at(6), HistoryKind.COMMAND, "cancel_order", cancel.message_id),
        (at(7), HistoryKind.EVENT, "order.cancelled", "c-1"),
        (at(7), HistoryKind.COMPENSATION, "cancel_order", None),
        (at(7), HistoryKind.STATUS, "FAILED", None),
    ]
    assert [e.detail for e in saga.history if e.kind is HistoryKind.COMPENSATION] == [
        "confirmed: payment pay-7",
        "confirmed: order order-42",
    ]


# ------------------------------------------------------- rejected compensations


def test_rejected_compensation_is_resent_after_backoff_with_a_new_message_id() -> None:
    saga, commands, failed_at = fail(Step.START_TIMER, False)
    first = single(commands)
    rejected_at = failed_at + timedelta(seconds=2)

    assert saga.handle(event("payment.release_failed", {"error": "busy"}, rejected_at), rejected_at, POLICY) == []

    assert saga.status is SagaStatus.COMPENSATING
    assert saga.awaiting is not None
    assert saga.awaiting.sent is False
    assert saga.awaiting.message_id != first.message_id
    assert saga.due_at == rejected_at + POLICY.backoff(1)
    # Not before the backoff is over.
    assert saga.on_deadline(rejected_at + POLICY.backoff(1) - timedelta(microseconds=1), POLICY) == []

    resent = single(saga.on_deadline(rejected_at + POLICY.backoff(1), POLICY))

    assert resent.type == "revert_payment"
    assert resent.message_id != first.message_id
    assert resent.message_id == saga.awaiting.message_id
    assert resent.payload == first.payload
    assert saga.awaiting.attempts == 2
    assert saga.awaiting.sent is True
    assert saga.due_at == rejected_at + POLICY.backoff(1) + POLICY.step_deadline
    # Then confirmed: the saga goes on to cancel the order.
    assert single(saga.handle(event("payment.released", {}, at(60)), at(60), POLICY)).type == "cancel_order"


def test_each_rejection_waits_twice_as_long_and_gets_another_message_id() -> None:
    saga, commands, when = fail(Step.GET_PAYMENT_INFO, False)
    message_ids = [single(commands).message_id]
    waits = []
    for _ in range(3):
        when += timedelta(seconds=1)
        saga.handle(event("order.cancellation_failed", {}, when), when, POLICY)
        assert saga.due_at is not None
        waits.append(saga.due_at - when)
        resent = single(saga.on_deadline(saga.due_at, POLICY))
        message_ids.append(resent.message_id)
        when = saga.due_at - POLICY.step_deadline

    assert waits == [timedelta(seconds=1), timedelta(seconds=2), timedelta(seconds=4)]
    assert len(set(message_ids)) == 4


def test_compensation_whose_deadline_passes_is_resent_with_the_same_message_id() -> None:
    saga, commands, failed_at = fail(Step.UPDATE_ORDER_STATUS, False)
    first = single(commands)
    assert saga.on_deadline(failed_at + POLICY.step_deadline - timedelta(microseconds=1), POLICY) == []

    resent = single(saga.on_deadline(failed_at + POLICY.step_deadline, POLICY))

    assert resent.type == "revert_payment"
    assert resent.message_id == first.message_id
    assert resent.payload == first.payload
    assert saga.awaiting is not None and saga.awaiting.attempts == 2
    assert saga.due_at == failed_at + 2 * POLICY.step_deadline
    assert saga.status is SagaStatus.COMPENSATING
    assert saga.history[-2].kind is HistoryKind.DEADLINE
    assert saga.history[-1].kind is HistoryKind.COMMAND
    assert saga.history[-1].message_id == first.message_id


def test_compensation_rejected_until_retries_are_used_up_ends_compensation_failed() -> None:
    policy = SagaPolicy(compensation_attempts=3)
    saga, commands, when = fail(Step.START_TIMER, False, policy)
    sent = list(commands)
    for attempt in range(1, 4):
        when += timedelta(seconds=1)
        sent += saga.handle(event("payment.release_failed", {"error": f"no #{attempt}"}, when), when, policy)
        if attempt < 3:
            assert saga.status is SagaStatus.COMPENSATING
            assert saga.due_at is not None
            sent += saga.on_deadline(saga.due_at, policy)
            when = saga.due_at

    # Every compensation runs: the revert is given up, the order is still cancelled.
    assert [c.type for c in sent] == ["revert_payment"] * 3 + ["cancel_order"]
    assert saga.status is SagaStatus.COMPENSATING
    when += timedelta(seconds=1)
    assert saga.handle(event("order.cancelled", {"order_id": ORDER_ID}, when), when, policy) == []

    assert saga.status is SagaStatus.COMPENSATION_FAILED  # type: ignore[comparison-overlap]  # mypy keeps the status narrowed across the call that changed it
    assert saga.status.is_final
    assert saga.awaiting is None
    assert saga.completed_at == when
    assert saga.error is not None
    assert "revert_payment not confirmed after 3 attempts" in saga.error
    assert "no #3" in saga.error and PAYMENT_ID in saga.error
    assert saga.error.startswith("START_TIMER failed")
    # The structured record names the payment left authorized: an operator must look.
    assert [(u.compensation, u.resource_id, u.status) for u in saga.compensations] == [
        (Compensation.REVERT_PAYMENT, PAYMENT_ID, UndoStatus.UNCONFIRMED),
        (Compensation.CANCEL_ORDER, ORDER_ID, UndoStatus.CONFIRMED),
    ]
    assert kinds(saga, HistoryKind.STATUS)[-1] == "COMPENSATION_FAILED"


def test_compensation_unanswered_until_retries_are_used_up_ends_compensation_failed() -> None:
    policy = SagaPolicy(compensation_attempts=4)
    saga, commands, _ = fail(Step.GET_PAYMENT_INFO, True, policy)
    first = single(commands)
    resent = []
    while saga.status is SagaStatus.COMPENSATING:
        assert saga.due_at is not None
        resent += saga.on_deadline(saga.due_at, policy)

    assert [c.message_id for c in resent] == [first.message_id] * 3
    assert saga.status is SagaStatus.COMPENSATION_FAILED
    assert saga.error is not None and "cancel_order not confirmed after 4 attempts: no reply" in saga.error
    assert saga.completed_at is not None
    assert saga.due_at is None


def test_compensation_with_a_single_attempt_gives_up_on_first_rejection() -> None:
    policy = SagaPolicy(compensation_attempts=1)
    saga, _, when = fail(Step.GET_PAYMENT_INFO, False, policy)

    commands = saga.handle(event("order.cancellation_failed", {"error": "gone"}, when), when, policy)

    assert commands == []
    assert saga.status is SagaStatus.COMPENSATION_FAILED


def test_rejection_of_the_second_compensation_after_the_first_was_confirmed() -> None:
    policy = SagaPolicy(compensation_attempts=2)
    saga, _, when = fail(Step.START_TIMER, False, policy)
    cancel = single(saga.handle(event("payment.released", {}, when), when, policy))
    saga.handle(event("order.cancellation_failed", {}, when), when, policy)
    assert saga.due_at is not None
    retry = single(saga.on_deadline(saga.due_at, policy))
    assert retry.type == "cancel_order" and retry.message_id != cancel.message_id

    saga.handle(event("order.cancelled", {}, saga.due_at), saga.due_at, policy)

    assert saga.status is SagaStatus.FAILED


# ------------------------------------------------------------------ cancel()

CANCEL_PLANS = [
    (Step.CREATE_ORDER, ["cancel_order"]),
    (Step.GET_PAYMENT_INFO, ["cancel_order"]),
    (Step.AUTHORIZE_PAYMENT, ["revert_payment", "cancel_order"]),
    (Step.UPDATE_ORDER_STATUS, ["revert_payment", "cancel_order"]),
    (Step.START_TIMER, ["revert_payment", "cancel_order"]),
]


@pytest.mark.parametrize(("step", "expected"), CANCEL_PLANS, ids=[s.value for s, _ in CANCEL_PLANS])
def test_cancel_of_a_started_saga_ends_cancelled_after_its_compensations(step: Step, expected: list[str]) -> None:
    saga, _ = saga_at(step)

    commands = saga.cancel("customer changed their mind", at(1), POLICY)

    assert saga.cancel_requested is True
    assert saga.error == "cancelled: customer changed their mind"
    sent = []
    when = at(1)
    while commands:
        assert saga.status is SagaStatus.COMPENSATING
        command = single(commands)
        sent.append(command)
        assert command.payload["reason"] == "cancelled: customer changed their mind"
        when += timedelta(seconds=1)
        commands = saga.handle(event(CONFIRMATION[command.type], {}, when), when, POLICY)

    assert [c.type for c in sent] == expected
    assert saga.status is SagaStatus.CANCELLED
    assert saga.completed_at == when
    assert saga.awaiting is None
    assert kinds(saga, HistoryKind.STATUS) == ["COMPENSATING", "CANCELLED"]


def test_cancel_at_create_order_cancels_with_unknown_order_id() -> None:
    saga, _ = saga_at(Step.CREATE_ORDER)

    command = single(saga.cancel("operator", at(1), POLICY))

    assert command.payload == {"order_id": None, "saga_id": SAGA_ID, "reason": "cancelled: operator"}


def test_cancelled_saga_whose_compensation_is_never_confirmed_ends_compensation_failed() -> None:
    policy = SagaPolicy(compensation_attempts=1)
    saga, _ = saga_at(Step.GET_PAYMENT_INFO, policy)
    saga.cancel("operator", at(1), policy)
    assert saga.due_at is not None

    saga.on_deadline(saga.due_at, policy)

    assert saga.status is SagaStatus.COMPENSATION_FAILED


def test_cancel_of_a_completed_saga_changes_nothing() -> None:
    saga = completed_saga()
    before = state(saga)
    history = list(saga.history)

    with pytest.raises(NotCancellable, match=r"^saga is COMPLETED; only a STARTED saga can be cancelled$"):
        saga.cancel("too late", at(10), POLICY)

    assert state(saga) == before
    assert saga.history == history


def test_cancel_of_a_compensating_saga_changes_nothing() -> None:
    saga, _, _ = fail(Step.START_TIMER, False)
    before = state(saga)

    with pytest.raises(NotCancellable, match=r"^saga is COMPENSATING; only a STARTED saga can be cancelled$"):
        saga.cancel("again", at(10), POLICY)

    assert state(saga) == before
    assert saga.cancel_requested is False


def test_a_second_cancel_is_refused_while_the_first_undoes_the_saga_and_after() -> None:
    saga, _ = saga_at(Step.GET_PAYMENT_INFO)
    saga.cancel("first", at(1), POLICY)
    before = state(saga)

    with pytest.raises(NotCancellable, match=r"^saga is COMPENSATING and already cancelled; only a STARTED"):
        saga.cancel("second", at(2), POLICY)
    assert state(saga) == before

    saga.handle(event("order.cancelled"), at(3), POLICY)
    with pytest.raises(NotCancellable, match=r"^saga is CANCELLED and already cancelled;"):
        saga.cancel("third", at(4), POLICY)


@pytest.mark.parametrize("ending", ["failed", "cancelled"])
def test_cancel_of_an_ended_saga_changes_nothing(ending: str) -> None:
    saga, _ = saga_at(Step.CREATE_ORDER)
    if ending == "failed":
        saga.handle(failure_event(Step.CREATE_ORDER), at(1), POLICY)
    else:
        saga.cancel("first", at(1), POLICY)
        saga.handle(event("order.cancelled", {}), at(2), POLICY)
    before = state(saga)

    with pytest.raises(NotCancellable):
        saga.cancel("second", at(3), POLICY)

    assert state(saga) == before
    assert saga.error is not None and "second" not in saga.error
