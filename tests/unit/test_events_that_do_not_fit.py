"""Events that do not fit the saga's state change nothing but the count and the history.

docs/contract.md, "No orphan resources": events that do not fit the saga's current state
(duplicates, late replies that name no resource the saga does not hold, replies for a
step already passed) change nothing; they are recorded in the saga's history and
counted. A late reply that names a new resource is undone instead: those cases are in
test_no_orphan_resources.py.
"""

from __future__ import annotations

import pytest
from tests.unit.domain_helpers import (
    FAILURE,
    ORDER_ID,
    POLICY,
    SUCCESS,
    at,
    completed_saga,
    event,
    failure_event,
    saga_at,
    start,
    state,
    success_event,
)

from saga.domain.messages import Event
from saga.domain.policy import SagaPolicy
from saga.domain.saga import (
    IGNORED_EVENTS_KEPT_IN_HISTORY,
    STEPS,
    CreateOrderSaga,
    HistoryKind,
    SagaStatus,
    Step,
)


def assert_ignored(saga: CreateOrderSaga, stray: Event, when_seconds: float = 100) -> None:
    """Applies `stray` and checks it changed nothing but the count and one IGNORED entry."""
    before = state(saga)
    count = saga.ignored_events
    history = list(saga.history)

    commands = saga.handle(stray, at(when_seconds), POLICY)

    assert commands == []
    assert state(saga) == before
    assert saga.ignored_events == count + 1
    assert saga.history[:-1] == history
    entry = saga.history[-1]
    assert entry.kind is HistoryKind.IGNORED
    assert entry.type == stray.type
    assert entry.message_id == stray.message_id
    assert entry.at == at(when_seconds)
    assert entry.detail


# ---------------------------------------------------------------- duplicates


@pytest.mark.parametrize("step", list(Step))
def test_duplicate_of_the_reply_just_applied_is_ignored(step: Step) -> None:
    saga, _ = saga_at(step)
    reply = success_event(step, message_id="dup-1")
    saga.handle(reply, at(1), POLICY)

    assert_ignored(saga, reply)


def test_duplicate_with_the_same_order_id_and_another_message_id_is_ignored_too() -> None:
    saga, _ = saga_at(Step.CREATE_ORDER)
    saga.handle(event("order.created", {"order_id": "first"}, message_id="a"), at(1), POLICY)

    assert_ignored(saga, event("order.created", {"order_id": "first"}, message_id="b"))
    assert saga.order_id == "first"


def test_duplicate_failure_is_ignored() -> None:
    saga, _ = saga_at(Step.AUTHORIZE_PAYMENT)
    saga.handle(failure_event(Step.AUTHORIZE_PAYMENT), at(1), POLICY)

    assert_ignored(saga, failure_event(Step.AUTHORIZE_PAYMENT))
    assert [undo.command_type for undo in saga.pending_compensations] == ["cancel_order"]


def test_duplicate_compensation_rejection_during_backoff_is_ignored() -> None:
    saga, _ = saga_at(Step.GET_PAYMENT_INFO)
    saga.handle(failure_event(Step.GET_PAYMENT_INFO), at(1), POLICY)
    rejection = event("order.cancellation_failed", {"error": "later"}, message_id="rej-1")
    saga.handle(rejection, at(2), POLICY)
    assert saga.awaiting is not None and saga.awaiting.sent is False

    assert_ignored(saga, rejection)
    assert saga.awaiting.attempts == 1


def test_duplicate_compensation_confirmation_is_ignored() -> None:
    saga, _ = saga_at(Step.START_TIMER)
    saga.handle(failure_event(Step.START_TIMER), at(1), POLICY)
    released = event("payment.released", {}, message_id="rel-1")
    saga.handle(released, at(2), POLICY)
    assert saga.awaiting is not None and saga.awaiting.command_type == "cancel_order"

    assert_ignored(saga, released)


# ------------------------------------------------- steps passed, out of order


@pytest.mark.parametrize("current", STEPS[1:])
@pytest.mark.parametrize("outcome", ["success", "failure"])
def test_reply_for_a_step_already_passed_is_ignored(current: Step, outcome: str) -> None:
    for passed in STEPS[: STEPS.index(current)]:
        saga, _ = saga_at(current)
        stray = success_event(passed) if outcome == "success" else failure_event(passed)
        assert_ignored(saga, stray)
        assert saga.current_step is current
        assert saga.status is SagaStatus.STARTED


@pytest.mark.parametrize("current", STEPS[:-1])
def test_reply_for_a_step_not_reached_yet_is_ignored(current: Step) -> None:
    for later in STEPS[STEPS.index(current) + 1 :]:
        saga, _ = saga_at(current)
        assert_ignored(saga, success_event(later))
        saga, _ = saga_at(current)
        assert_ignored(saga, failure_event(later))


def test_compensation_replies_while_moving_forward_are_ignored() -> None:
    saga, _ = saga_at(Step.UPDATE_ORDER_STATUS)
    for type_ in ("order.cancelled", "order.cancellation_failed", "payment.released", "payment.release_failed"):
        assert_ignored(saga, event(type_))


def test_step_replies_while_compensating_are_ignored() -> None:
    saga, _ = saga_at(Step.START_TIMER)
    saga.handle(failure_event(Step.START_TIMER), at(1), POLICY)
    for step in Step:
        assert_ignored(saga, success_event(step))
        if step is not Step.AUTHORIZE_PAYMENT:  # payment.failed is also how a revert is rejected
            assert_ignored(saga, failure_event(step))
    assert saga.status is SagaStatus.COMPENSATING


def test_the_other_compensations_reply_is_ignored() -> None:
    saga, _ = saga_at(Step.START_TIMER)
    saga.handle(failure_event(Step.START_TIMER), at(1), POLICY)
    assert saga.awaiting is not None and saga.awaiting.command_type == "revert_payment"

    assert_ignored(saga, event("order.cancelled"))


def test_confirmation_during_backoff_counts() -> None:
    saga, _ = saga_at(Step.GET_PAYMENT_INFO)
    saga.handle(failure_event(Step.GET_PAYMENT_INFO), at(1), POLICY)
    saga.handle(event("order.cancellation_failed"), at(2), POLICY)
    assert saga.awaiting is not None and saga.awaiting.sent is False

    assert saga.handle(event("order.cancelled"), at(2.5), POLICY) == []

    assert saga.status is SagaStatus.FAILED
    assert saga.awaiting is None
    assert [undo.status.value for undo in saga.compensations] == ["confirmed"]


def test_out_of_order_events_then_the_right_one() -> None:
    saga, _ = start()
    for step in (Step.AUTHORIZE_PAYMENT, Step.START_TIMER, Step.GET_PAYMENT_INFO):
        assert_ignored(saga, success_event(step))

    commands = saga.handle(success_event(Step.CREATE_ORDER), at(200), POLICY)

    assert [c.type for c in commands] == ["get_payment_info"]
    assert saga.ignored_events == 3


def test_the_saga_never_moves_backwards() -> None:
    saga, _ = start()
    progress = [STEPS.index(saga.current_step)]
    # Every step's reply, latest first, round after round: each round only one fits.
    for round_ in range(len(STEPS)):
        for index, step in enumerate(reversed(STEPS)):
            saga.handle(success_event(step), at(round_ * 10 + index), POLICY)
            progress.append(STEPS.index(saga.current_step))

    assert progress == sorted(progress)
    assert saga.status is SagaStatus.COMPLETED
    assert saga.ignored_events == len(STEPS) * len(STEPS) - len(STEPS)


def test_a_failure_for_a_passed_step_does_not_fail_the_saga() -> None:
    saga, _ = saga_at(Step.START_TIMER)
    for step in STEPS[:-1]:
        saga.handle(failure_event(step), at(1), POLICY)

    assert saga.status.value == "STARTED"
    assert saga.error is None
    assert saga.handle(success_event(Step.START_TIMER), at(2), POLICY) == []
    assert saga.status is SagaStatus.COMPLETED


# ---------------------------------------------------------- after the end


def ended(how: str) -> CreateOrderSaga:
    if how == "COMPLETED":
        return completed_saga()
    if how == "FAILED":
        saga, _ = saga_at(Step.CREATE_ORDER)
        saga.handle(failure_event(Step.CREATE_ORDER), at(1), POLICY)
        return saga
    if how == "CANCELLED":
        saga, _ = saga_at(Step.GET_PAYMENT_INFO)
        saga.cancel("operator", at(1), POLICY)
        saga.handle(event("order.cancelled"), at(2), POLICY)
        return saga
    policy = SagaPolicy(compensation_attempts=1)
    saga, _ = saga_at(Step.GET_PAYMENT_INFO, policy)
    saga.handle(failure_event(Step.GET_PAYMENT_INFO), at(1), policy)
    saga.handle(event("order.cancellation_failed"), at(2), policy)
    return saga


ALL_EVENT_TYPES = sorted(
    {type_ for type_, _ in SUCCESS.values()}
    | set(FAILURE.values())
    | {"order.cancelled", "order.cancellation_failed", "payment.released", "payment.release_failed"}
)


@pytest.mark.parametrize("how", ["COMPLETED", "FAILED", "CANCELLED", "COMPENSATION_FAILED"])
def test_replies_after_the_saga_ended_are_ignored(how: str) -> None:
    saga = ended(how)
    assert saga.status.value == how
    assert saga.status.is_final
    payloads = {type_: payload for type_, payload in SUCCESS.values()}

    # Replies that name a resource the saga does not hold, or confirm a compensation given
    # up, do change it (test_no_orphan_resources.py); every other reply is ignored.
    fitting = {
        "FAILED": {"order.created"},
        "COMPENSATION_FAILED": {"order.cancelled"},
    }.get(how, set())
    strays = [type_ for type_ in ALL_EVENT_TYPES if type_ not in fitting]

    for index, type_ in enumerate(strays):
        assert_ignored(saga, event(type_, dict(payloads.get(type_, {})), message_id=f"m-{index}"), 100 + index)

    assert saga.status.value == how
    assert saga.ignored_events == len(strays)


def test_ignored_entry_says_what_was_awaited() -> None:
    saga, _ = saga_at(Step.AUTHORIZE_PAYMENT)

    saga.handle(success_event(Step.CREATE_ORDER), at(1), POLICY)

    detail = saga.history[-1].detail
    assert detail is not None
    assert "payment.authorized" in detail and "payment.failed" in detail


# -------------------------------------------------------- bounded history


def test_history_keeps_a_bounded_number_of_ignored_entries_while_the_count_goes_on() -> None:
    saga = completed_saga()
    history_before = len(saga.history)
    extra = 25

    for index in range(IGNORED_EVENTS_KEPT_IN_HISTORY + extra):
        saga.handle(event("order.created", {"order_id": ORDER_ID}, message_id=f"d-{index}"), at(index), POLICY)

    ignored = [e for e in saga.history if e.kind is HistoryKind.IGNORED]
    assert saga.ignored_events == IGNORED_EVENTS_KEPT_IN_HISTORY + extra
    assert len(ignored) == IGNORED_EVENTS_KEPT_IN_HISTORY
    assert len(saga.history) == history_before + IGNORED_EVENTS_KEPT_IN_HISTORY
    # The first ones are kept, the flood after them only counted.
    assert [e.message_id for e in ignored] == [f"d-{i}" for i in range(IGNORED_EVENTS_KEPT_IN_HISTORY)]
    assert saga.status is SagaStatus.COMPLETED


def test_cap_on_ignored_entries_does_not_drop_real_entries() -> None:
    saga, _ = start()
    for index in range(IGNORED_EVENTS_KEPT_IN_HISTORY + 5):
        saga.handle(success_event(Step.START_TIMER), at(index), POLICY)

    saga.handle(success_event(Step.CREATE_ORDER), at(500), POLICY)

    assert saga.ignored_events == IGNORED_EVENTS_KEPT_IN_HISTORY + 5
    assert saga.history[-2].kind is HistoryKind.EVENT
    assert saga.history[-1].kind is HistoryKind.COMMAND
    assert saga.history[-1].type == "get_payment_info"


def test_ignored_events_are_counted_from_zero() -> None:
    saga, _ = start()
    assert saga.ignored_events == 0

    saga.handle(event("timer.started"), at(1), POLICY)

    assert saga.ignored_events == 1


def test_a_confirmation_naming_another_resource_says_so_not_what_was_awaited() -> None:
    saga, _ = saga_at(Step.GET_PAYMENT_INFO)
    saga.handle(failure_event(Step.GET_PAYMENT_INFO), at(1), POLICY)
    held = saga.order_id

    saga.handle(event("order.cancelled", {"order_id": "someone-elses"}), at(2), POLICY)

    assert saga.history[-1].kind is HistoryKind.IGNORED
    assert (
        saga.history[-1].detail
        == f"order.cancelled names order someone-elses; the cancel_order running undoes order {held}"
    )
