"""No orphan resources, and every compensation runs (docs/contract.md, "Compensations"
and "No orphan resources").

A success reply naming a resource the saga does not hold is undone, whatever state it
meets: forward, compensating, or each terminal status. The rule is one rule for every
step whose success yields a resource; these tests run it for each such step.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from tests.unit.domain_helpers import (
    ORDER_ID,
    PAYMENT_ID,
    POLICY,
    at,
    completed_saga,
    event,
    exhaust_step_deadlines,
    failure_event,
    saga_at,
    start,
    state,
    success_event,
)

from saga.domain.messages import Command
from saga.domain.policy import SagaPolicy
from saga.domain.saga import (
    MAX_ERROR_CHARS,
    MAX_HISTORY_DETAIL_CHARS,
    CreateOrderSaga,
    HistoryKind,
    NothingToRetry,
    SagaStatus,
    Step,
    UndoStatus,
    failure_reason,
)
from saga.domain.steps import STEP_OF_RESOURCE, UNDO, Resource, ResourceRef

HELD = {Resource.ORDER: ORDER_ID, Resource.PAYMENT: PAYMENT_ID}
RESOURCES = list(STEP_OF_RESOURCE)


def deliver_yield(saga: CreateOrderSaga, resource: Resource, resource_id: str, when: datetime) -> list[Command]:
    """The success reply of the step yielding `resource`, naming `resource_id`."""
    type_ = STEP_OF_RESOURCE[resource].action.success
    return saga.handle(event(type_, {resource.id_field: resource_id}, when), when, POLICY)


def confirm(saga: CreateOrderSaga, command: Command, when: datetime, policy: SagaPolicy = POLICY) -> list[Command]:
    spec = next(spec for spec in UNDO.values() if spec.action.command == command.type)
    field = spec.undoes.id_field
    return saga.handle(event(spec.action.success, {field: command.payload[field]}, when), when, policy)


def undos(saga: CreateOrderSaga) -> list[tuple[str, str | None, str, bool]]:
    return [(u.command_type, u.resource_id, u.status.value, u.cleanup) for u in saga.compensations]


# ------------------------------------------------------------- moving forward


@pytest.mark.parametrize("resource", RESOURCES)
def test_a_second_resource_while_moving_forward_waits_and_is_cleaned_up_after_completion(resource: Resource) -> None:
    saga, _ = saga_at(Step.START_TIMER)

    assert deliver_yield(saga, resource, "second", at(1)) == []

    assert saga.status is SagaStatus.STARTED
    assert saga.awaiting is not None and saga.awaiting.command_type == "start_order_timer"
    command = UNDO[resource].action.command
    assert undos(saga) == [(command, "second", "pending", False)]

    cleanup = saga.handle(success_event(Step.START_TIMER, at(2)), at(2), POLICY)

    assert saga.status is SagaStatus.COMPLETED  # type: ignore[comparison-overlap]  # mypy keeps the status narrowed across the call that changed it
    assert [(c.type, c.payload[resource.id_field]) for c in cleanup] == [(command, "second")]
    assert undos(saga) == [(command, "second", "running", True)]
    assert getattr(saga, resource.id_field) == HELD[resource]  # the saga keeps its own

    assert confirm(saga, cleanup[0], at(3)) == []

    assert saga.status is SagaStatus.COMPLETED
    assert undos(saga) == [(command, "second", "confirmed", True)]
    assert saga.awaiting is None and saga.due_at is None


@pytest.mark.parametrize("resource", RESOURCES)
def test_a_second_resource_while_moving_forward_joins_the_compensations_if_the_saga_fails(resource: Resource) -> None:
    saga, _ = saga_at(Step.START_TIMER)
    deliver_yield(saga, resource, "second", at(1))

    sent = saga.handle(failure_event(Step.START_TIMER, when=at(2)), at(2), POLICY)
    when = at(2)
    while sent:
        when += timedelta(seconds=1)
        sent = [*sent[1:], *confirm(saga, sent[0], when)]

    assert saga.status is SagaStatus.FAILED
    assert sorted((u.command_type, u.resource_id, u.status.value) for u in saga.compensations) == sorted(
        [
            ("revert_payment", PAYMENT_ID, "confirmed"),
            ("cancel_order", ORDER_ID, "confirmed"),
            (UNDO[resource].action.command, "second", "confirmed"),
        ]
    )
    assert saga.cleanups == []


# ------------------------------------------------------------- compensating


@pytest.mark.parametrize("resource", RESOURCES)
def test_a_late_resource_after_the_step_failed_by_deadline_is_undone_with_its_id(resource: Resource) -> None:
    saga, _ = saga_at(STEP_OF_RESOURCE[resource].step)
    failed = exhaust_step_deadlines(saga)
    first = failed.commands[0]
    assert first.type == UNDO[resource].action.command and first.payload[resource.id_field] is None

    resent = deliver_yield(saga, resource, "late-id", failed.now + timedelta(seconds=1))

    assert [(c.type, c.payload[resource.id_field]) for c in resent] == [(first.type, "late-id")]
    confirm(saga, resent[0], failed.now + timedelta(seconds=2))
    assert ("late-id", "confirmed") in [(u.resource_id, u.status.value) for u in saga.compensations]


def test_a_late_resource_while_another_compensation_runs_queues_behind_it() -> None:
    saga, _ = saga_at(Step.UPDATE_ORDER_STATUS)
    revert = saga.handle(failure_event(Step.UPDATE_ORDER_STATUS, when=at(1)), at(1), POLICY)[0]
    assert revert.type == "revert_payment"

    assert deliver_yield(saga, Resource.PAYMENT, "pay-second", at(2)) == []

    assert [(u.command_type, u.resource_id, u.status.value) for u in saga.pending_compensations] == [
        ("revert_payment", PAYMENT_ID, "running"),
        ("cancel_order", ORDER_ID, "pending"),
        ("revert_payment", "pay-second", "pending"),
    ]
    # Reverse step order: both payments before the order.
    second = confirm(saga, revert, at(3))
    assert [(c.type, c.payload["payment_id"]) for c in second] == [("revert_payment", "pay-second")]
    third = confirm(saga, second[0], at(4))
    assert [c.type for c in third] == ["cancel_order"]
    confirm(saga, third[0], at(5))
    assert saga.status is SagaStatus.FAILED


# ------------------------------------------------------------- terminal


def failed_saga() -> CreateOrderSaga:
    saga, _ = saga_at(Step.GET_PAYMENT_INFO)
    cancel = saga.handle(failure_event(Step.GET_PAYMENT_INFO, when=at(1)), at(1), POLICY)[0]
    confirm(saga, cancel, at(2))
    assert saga.status is SagaStatus.FAILED
    return saga


def cancelled_saga() -> CreateOrderSaga:
    saga, _ = saga_at(Step.GET_PAYMENT_INFO)
    cancel = saga.cancel("operator", at(1), POLICY)[0]
    confirm(saga, cancel, at(2))
    assert saga.status is SagaStatus.CANCELLED
    return saga


def compensation_failed_saga() -> CreateOrderSaga:
    policy = SagaPolicy(compensation_attempts=1)
    saga, _ = saga_at(Step.GET_PAYMENT_INFO, policy)
    saga.handle(failure_event(Step.GET_PAYMENT_INFO, when=at(1)), at(1), policy)
    saga.handle(event("order.cancellation_failed", {"error": "locked"}, at(2)), at(2), policy)
    assert saga.status is SagaStatus.COMPENSATION_FAILED
    return saga


TERMINAL = {
    "COMPLETED": completed_saga,
    "FAILED": failed_saga,
    "CANCELLED": cancelled_saga,
    "COMPENSATION_FAILED": compensation_failed_saga,
}


@pytest.mark.parametrize("how", list(TERMINAL))
@pytest.mark.parametrize("resource", [Resource.ORDER])
def test_a_resource_named_after_the_end_is_cleaned_up_and_the_status_never_changes(
    how: str, resource: Resource
) -> None:
    saga = TERMINAL[how]()
    completed_at = saga.completed_at

    cleanup = deliver_yield(saga, resource, "stray", at(50))

    command = UNDO[resource].action.command
    assert [(c.type, c.payload[resource.id_field]) for c in cleanup] == [(command, "stray")]
    assert saga.status.value == how and saga.completed_at == completed_at
    assert [(u.resource_id, u.status.value) for u in saga.cleanups] == [("stray", "running")]
    assert saga.due_at is not None  # the sweep keeps the clean-up going

    confirm(saga, cleanup[0], at(51))

    assert saga.status.value == how
    assert [(u.resource_id, u.status.value) for u in saga.cleanups] == [("stray", "confirmed")]


def test_a_payment_named_after_a_completed_saga_is_reverted() -> None:
    saga = completed_saga()

    cleanup = deliver_yield(saga, Resource.PAYMENT, "pay-twice", at(50))

    assert [(c.type, c.payload["payment_id"], c.payload["order_id"]) for c in cleanup] == [
        ("revert_payment", "pay-twice", ORDER_ID)
    ]
    assert saga.status is SagaStatus.COMPLETED


def test_a_clean_up_never_confirmed_is_unconfirmed_and_retried_by_an_operator() -> None:
    policy = SagaPolicy(compensation_attempts=2)
    saga = completed_saga(policy)
    deliver_yield(saga, Resource.ORDER, "stray", at(50))
    while saga.due_at is not None:
        saga.on_deadline(saga.due_at, policy)

    assert saga.status is SagaStatus.COMPLETED
    assert saga.has_unconfirmed_cleanup
    assert [(u.resource_id, u.status.value) for u in saga.cleanups] == [("stray", "unconfirmed")]

    again = saga.retry("alice", at(500), policy)

    assert [(c.type, c.payload["order_id"]) for c in again] == [("cancel_order", "stray")]
    assert saga.status is SagaStatus.COMPLETED
    assert saga.history[-2].kind is HistoryKind.OPERATOR and "alice" in (saga.history[-2].detail or "")


@pytest.mark.parametrize("how", ["COMPLETED", "FAILED", "CANCELLED"])
def test_a_reply_naming_the_held_or_no_resource_after_the_end_changes_nothing(how: str) -> None:
    saga = TERMINAL[how]()
    held = saga.order_id

    commands = saga.handle(event("order.created", {"order_id": held} if held else {}, at(60)), at(60), POLICY)

    assert commands == [] and saga.cleanups == []
    assert saga.history[-1].kind is HistoryKind.IGNORED


# ------------------------------------------------------------- a resource another saga holds

VICTIM = "6b0e0b7a-0000-4000-8000-00000000000v"
"""The saga that holds the resource the events below name."""


def held_by_victim(resource: Resource, resource_id: str = "victims") -> dict[ResourceRef, str]:
    return {ResourceRef(resource, resource_id): VICTIM}


def forward_at_the_step(resource: Resource) -> CreateOrderSaga:
    return saga_at(STEP_OF_RESOURCE[resource].step)[0]


def forward_past_the_step(resource: Resource) -> CreateOrderSaga:
    return saga_at(Step.START_TIMER)[0]


def compensating_after_the_step_failed_by_deadline(resource: Resource) -> CreateOrderSaga:
    saga = forward_at_the_step(resource)
    exhaust_step_deadlines(saga)  # its compensation runs with the id unknown
    assert saga.status is SagaStatus.COMPENSATING
    return saga


def compensating_while_another_compensation_runs(resource: Resource) -> CreateOrderSaga:
    saga, _ = saga_at(Step.UPDATE_ORDER_STATUS)
    saga.handle(failure_event(Step.UPDATE_ORDER_STATUS, when=at(1)), at(1), POLICY)
    assert saga.status is SagaStatus.COMPENSATING
    return saga


def terminal(make: Callable[[], CreateOrderSaga]) -> Callable[[Resource], CreateOrderSaga]:
    return lambda resource: make()


STATES: dict[str, Callable[[Resource], CreateOrderSaga]] = {
    "forward, awaiting the step": forward_at_the_step,
    "forward, past the step": forward_past_the_step,
    "compensating, the step failed by deadline": compensating_after_the_step_failed_by_deadline,
    "compensating, another compensation running": compensating_while_another_compensation_runs,
    **{how: terminal(make) for how, make in TERMINAL.items()},
}


@pytest.mark.parametrize("how", list(STATES))
@pytest.mark.parametrize("resource", RESOURCES)
def test_a_success_reply_naming_a_resource_another_saga_holds_is_ignored(how: str, resource: Resource) -> None:
    saga = STATES[how](resource)
    before, ignored_before, history_before = state(saga), saga.ignored_events, len(saga.history)
    reply = event(STEP_OF_RESOURCE[resource].action.success, {resource.id_field: "victims"}, at(70))

    commands = saga.handle(reply, at(70), POLICY, held_by_victim(resource))

    assert commands == []
    assert state(saga) == before  # nothing adopted, nothing to undo, nothing sent
    assert ResourceRef(resource, "victims") not in saga.held_resources
    assert saga.ignored_events == ignored_before + 1
    assert len(saga.history) == history_before + 1
    entry = saga.history[-1]
    assert (entry.kind, entry.type) == (HistoryKind.IGNORED, reply.type)
    assert entry.detail == f"{resource.id_field} victims is held by saga {VICTIM}, not by this one"


@pytest.mark.parametrize("resource", RESOURCES)
def test_the_step_goes_on_with_its_own_resource_after_one_held_elsewhere_was_ignored(resource: Resource) -> None:
    saga = forward_at_the_step(resource)
    success = STEP_OF_RESOURCE[resource].action.success
    saga.handle(event(success, {resource.id_field: "victims"}, at(1)), at(1), POLICY, held_by_victim(resource))

    following = saga.handle(event(success, {resource.id_field: "mine"}, at(2)), at(2), POLICY, held_by_victim(resource))

    assert getattr(saga, resource.id_field) == "mine"
    assert len(following) == 1 and saga.status is SagaStatus.STARTED


@pytest.mark.parametrize("resource", RESOURCES)
@pytest.mark.parametrize("outcome", ["success", "failures"])
def test_a_compensation_reply_naming_a_resource_another_saga_holds_is_ignored(resource: Resource, outcome: str) -> None:
    saga = compensating_after_the_step_failed_by_deadline(resource)
    action = UNDO[resource].action
    type_ = action.success if outcome == "success" else action.failures[0]
    before, ignored_before = state(saga), saga.ignored_events

    commands = saga.handle(
        event(type_, {resource.id_field: "victims"}, at(70)), at(70), POLICY, held_by_victim(resource)
    )

    # The compensation waiting with the id unknown neither takes the other saga's id nor counts as done.
    assert commands == [] and state(saga) == before
    assert undos(saga)[0] == (action.command, None, "running", False)
    assert saga.ignored_events == ignored_before + 1


def test_a_reply_naming_a_resource_this_saga_holds_counts_when_another_holds_it_too() -> None:
    saga = compensating_while_another_compensation_runs(Resource.PAYMENT)
    revert = saga.awaiting
    assert revert is not None and revert.payload["payment_id"] == PAYMENT_ID

    # Two sagas holding one resource predate this rule; the one that holds it still settles it.
    commands = saga.handle(
        event("payment.released", {"payment_id": PAYMENT_ID}, at(2)),
        at(2),
        POLICY,
        held_by_victim(Resource.PAYMENT, PAYMENT_ID),
    )

    assert [c.type for c in commands] == ["cancel_order"]
    assert undos(saga)[0] == ("revert_payment", PAYMENT_ID, "confirmed", False)


def test_a_resource_this_saga_is_named_as_holding_is_not_held_elsewhere() -> None:
    saga = forward_past_the_step(Resource.ORDER)

    saga.handle(
        event("order.created", {"order_id": "second"}, at(1)),
        at(1),
        POLICY,
        {ResourceRef(Resource.ORDER, "second"): saga.id},
    )

    assert undos(saga) == [("cancel_order", "second", "pending", False)]


# ------------------------------------------------------------- every compensation runs


def test_a_given_up_revert_does_not_stop_the_cancel() -> None:
    policy = SagaPolicy(compensation_attempts=1)
    saga, _ = saga_at(Step.START_TIMER, policy)
    saga.handle(failure_event(Step.START_TIMER, when=at(1)), at(1), policy)

    # The platform's payment service rejects a revert with payment.failed.
    rejected = {"error": "stripe_error", "message": "card\nvanished"}
    cancel = saga.handle(event("payment.failed", rejected, at(2)), at(2), policy)

    assert [(c.type, c.payload["order_id"]) for c in cancel] == [("cancel_order", ORDER_ID)]
    confirm(saga, cancel[0], at(3), policy)
    assert saga.status is SagaStatus.COMPENSATION_FAILED
    assert saga.error is not None and PAYMENT_ID in saga.error and "stripe_error: card vanished" in saga.error
    assert [(u.command_type, u.status.value) for u in saga.compensations] == [
        ("revert_payment", "unconfirmed"),
        ("cancel_order", "confirmed"),
    ]


def test_a_confirmation_after_give_up_counts_while_the_others_run() -> None:
    policy = SagaPolicy(compensation_attempts=1)
    saga, _ = saga_at(Step.START_TIMER, policy)
    saga.handle(failure_event(Step.START_TIMER, when=at(1)), at(1), policy)
    cancel = saga.handle(event("payment.release_failed", {}, at(2)), at(2), policy)[0]

    saga.handle(event("payment.released", {"payment_id": PAYMENT_ID}, at(3)), at(3), policy)
    confirm(saga, cancel, at(4), policy)

    assert saga.status is SagaStatus.FAILED
    assert [u.status.value for u in saga.compensations] == ["confirmed", "confirmed"]


def test_a_confirmation_after_the_saga_ended_counts_but_the_status_stays() -> None:
    saga = compensation_failed_saga()

    saga.handle(event("order.cancelled", {"order_id": ORDER_ID}, at(9)), at(9), POLICY)

    assert saga.status is SagaStatus.COMPENSATION_FAILED
    assert [u.status for u in saga.compensations] == [UndoStatus.CONFIRMED]


def test_an_unknown_order_never_confirmed_is_unknown_and_does_not_page_an_operator() -> None:
    policy = SagaPolicy(compensation_attempts=2, step_resends=0)
    saga, _ = start(policy)
    saga.on_deadline(saga.due_at or at(0), policy)  # CREATE_ORDER silent: fails by deadline
    assert saga.awaiting is not None and saga.awaiting.payload["order_id"] is None
    while saga.due_at is not None:
        saga.on_deadline(saga.due_at, policy)

    assert saga.status is SagaStatus.FAILED
    assert undos(saga) == [("cancel_order", None, "unknown", False)]


def test_a_known_resource_left_undone_ends_compensation_failed_naming_it() -> None:
    policy = SagaPolicy(compensation_attempts=2)
    saga, _ = saga_at(Step.GET_PAYMENT_INFO, policy)
    saga.handle(failure_event(Step.GET_PAYMENT_INFO, when=at(1)), at(1), policy)
    while saga.due_at is not None:
        saga.on_deadline(saga.due_at, policy)

    assert saga.status is SagaStatus.COMPENSATION_FAILED
    assert undos(saga) == [("cancel_order", ORDER_ID, "unconfirmed", False)]
    assert saga.error is not None and ORDER_ID in saga.error


def test_an_operator_retry_of_a_compensation_failed_saga_runs_it_again_and_can_end_failed() -> None:
    saga = compensation_failed_saga()
    error_before = saga.error

    again = saga.retry("bob", at(100), POLICY)

    assert [(c.type, c.payload["order_id"]) for c in again] == [("cancel_order", ORDER_ID)]
    assert saga.status is SagaStatus.COMPENSATING and saga.completed_at is None
    assert saga.awaiting is not None and saga.awaiting.attempts == 1
    confirm(saga, again[0], at(101))
    assert saga.status is SagaStatus.FAILED  # type: ignore[comparison-overlap]  # mypy keeps the status narrowed across the call that changed it
    assert saga.error is not None and error_before is not None and error_before.startswith(saga.error)
    with pytest.raises(NothingToRetry):
        saga.retry("bob", at(102), POLICY)


@pytest.mark.parametrize("how", ["COMPLETED", "FAILED", "CANCELLED"])
def test_nothing_to_retry(how: str) -> None:
    with pytest.raises(NothingToRetry):
        TERMINAL[how]().retry("carol", at(100), POLICY)


# ------------------------------------------------------------- reasons


def test_a_failure_reason_is_error_and_message_on_one_line_and_bounded() -> None:
    sql = "ERROR: value too long\nDETAIL: Failing row contains (\x00, 'x')\r\n" + "x" * 60_000
    saga, _ = saga_at(Step.UPDATE_ORDER_STATUS)

    revert = saga.handle(event("order.status_update_failed", {"error": sql}, at(1)), at(1), POLICY)[0]

    assert saga.error is not None and len(saga.error) <= MAX_ERROR_CHARS
    assert "\n" not in saga.error and "\x00" not in saga.error
    assert saga.error.startswith("UPDATE_ORDER_STATUS failed: ERROR: value too long DETAIL: Failing row")
    assert len(revert.payload["reason"]) <= MAX_ERROR_CHARS
    detail = next(e.detail for e in saga.history if e.type == "order.status_update_failed")
    assert detail is not None and len(detail) <= MAX_HISTORY_DETAIL_CHARS and "\n" not in detail


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"error": "INVALID_AMOUNT", "message": "at least 50"}, "INVALID_AMOUNT: at least 50"),
        ({"error": "User not found"}, "User not found"),
        ({"message": "only a message"}, "only a message"),
        ({"error": 402}, "402"),
        ({"error": "  \t\n"}, None),
        ({}, None),
    ],
)
def test_failure_reason_joins_error_and_message(payload: dict[str, object], reason: str | None) -> None:
    assert failure_reason(payload) == reason


def test_return_url_is_sent_with_authorize_payment_when_set() -> None:
    policy = SagaPolicy(payment_return_url="https://campus.example/paid")
    saga, _ = saga_at(Step.GET_PAYMENT_INFO, policy)

    authorize = saga.handle(success_event(Step.GET_PAYMENT_INFO), at(1), policy)[0]

    assert authorize.payload["return_url"] == "https://campus.example/paid"
    assert "return_url" not in saga_at(Step.AUTHORIZE_PAYMENT)[1].payload
