"""The happy path, command by command (docs/contract.md, "Command payloads", "The saga")."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest
from tests.unit.domain_helpers import (
    AMOUNT_CENTS,
    CURRENCY,
    CUSTOMER_ID,
    NOW,
    ORDER_DETAILS,
    ORDER_ID,
    PAYMENT_ID,
    PAYMENT_INFO,
    POLICY,
    SAGA_ID,
    at,
    event,
    start,
    success_event,
)

from saga.domain.messages import Command
from saga.domain.policy import SagaPolicy
from saga.domain.saga import CreateOrderSaga, HistoryKind, SagaStatus, Step


def only(commands: list[Command]) -> Command:
    assert len(commands) == 1, commands
    return commands[0]


def assert_fresh_command(command: Command, type_: str, when: datetime) -> None:
    assert command.type == type_
    assert command.saga_id == SAGA_ID
    assert command.timestamp == when
    assert str(uuid.UUID(command.message_id)) == command.message_id


def test_start_sends_create_order_with_the_order_as_received() -> None:
    saga, commands = start()

    command = only(commands)
    assert_fresh_command(command, "create_order", NOW)
    assert command.payload == {"customer_id": CUSTOMER_ID, "order_details": ORDER_DETAILS, "saga_id": SAGA_ID}
    assert saga.status is SagaStatus.STARTED
    assert saga.current_step is Step.CREATE_ORDER
    assert saga.id == SAGA_ID
    assert saga.amount_cents == AMOUNT_CENTS
    assert saga.currency == CURRENCY
    assert saga.created_at == saga.updated_at == NOW
    assert saga.completed_at is None
    assert saga.error is None
    assert saga.awaiting is not None
    assert saga.awaiting.message_id == command.message_id
    assert saga.awaiting.attempts == 1
    assert saga.due_at == NOW + POLICY.step_deadline


def test_order_created_sends_get_payment_info_for_the_customer() -> None:
    saga, _ = start()

    command = only(saga.handle(success_event(Step.CREATE_ORDER), at(1), POLICY))

    assert_fresh_command(command, "get_payment_info", at(1))
    assert command.payload == {"user_id": CUSTOMER_ID}
    assert saga.status is SagaStatus.STARTED
    assert saga.current_step is Step.GET_PAYMENT_INFO
    assert saga.order_id == ORDER_ID
    assert saga.due_at == at(1) + POLICY.step_deadline


def test_payment_info_sends_authorize_payment_with_integer_amount_and_the_info_as_retrieved() -> None:
    saga, _ = start()
    saga.handle(success_event(Step.CREATE_ORDER), at(1), POLICY)

    command = only(saga.handle(success_event(Step.GET_PAYMENT_INFO), at(2), POLICY))

    assert_fresh_command(command, "authorize_payment", at(2))
    assert command.payload == {
        "order_id": ORDER_ID,
        "customer_id": CUSTOMER_ID,
        "amount_cents": AMOUNT_CENTS,
        "currency": CURRENCY,
        "payment_info": PAYMENT_INFO,
        # The nested form the platform's payment service reads (docs/contract.md, "Command payloads").
        "customer": {
            "clerkUserId": CUSTOMER_ID,
            "stripeCustomerId": PAYMENT_INFO["stripeCustomerId"],
            "userStripeCard": {"payment_method_id": PAYMENT_INFO["paymentMethodId"]},
        },
        "order": {"amount": AMOUNT_CENTS, "description": f"Payment for order {ORDER_ID}"},
    }
    assert type(command.payload["amount_cents"]) is int
    assert saga.current_step is Step.AUTHORIZE_PAYMENT
    assert saga.payment_info == PAYMENT_INFO


def test_payment_authorized_sends_update_order_status_created() -> None:
    saga, _ = start()
    saga.handle(success_event(Step.CREATE_ORDER), at(1), POLICY)
    saga.handle(success_event(Step.GET_PAYMENT_INFO), at(2), POLICY)

    command = only(saga.handle(success_event(Step.AUTHORIZE_PAYMENT), at(3), POLICY))

    assert_fresh_command(command, "update_order_status", at(3))
    assert command.payload == {"order_id": ORDER_ID, "status": "CREATED"}
    assert saga.current_step is Step.UPDATE_ORDER_STATUS
    assert saga.payment_id == PAYMENT_ID


def test_status_updated_sends_start_order_timer_with_timeout_at_now_plus_the_order_timer() -> None:
    policy = SagaPolicy(order_timer=timedelta(minutes=45))
    saga, _ = start(policy)
    for second, step in enumerate((Step.CREATE_ORDER, Step.GET_PAYMENT_INFO, Step.AUTHORIZE_PAYMENT), start=1):
        saga.handle(success_event(step), at(second), policy)

    command = only(saga.handle(success_event(Step.UPDATE_ORDER_STATUS), at(4), policy))

    assert_fresh_command(command, "start_order_timer", at(4))
    assert command.payload == {
        "order_id": ORDER_ID,
        "customer_id": CUSTOMER_ID,
        "timeout_at": "2026-11-28T12:45:04.000000+00:00",
    }
    timeout_at = datetime.fromisoformat(command.payload["timeout_at"])
    assert timeout_at.utcoffset() == timedelta(0)
    assert timeout_at == at(4) + timedelta(minutes=45)
    assert saga.current_step is Step.START_TIMER


def test_default_order_timer_is_thirty_minutes() -> None:
    saga, _ = start()
    for second, step in enumerate(
        (Step.CREATE_ORDER, Step.GET_PAYMENT_INFO, Step.AUTHORIZE_PAYMENT, Step.UPDATE_ORDER_STATUS), start=1
    ):
        commands = saga.handle(success_event(step), at(second), POLICY)

    assert only(commands).payload["timeout_at"] == "2026-11-28T12:30:04.000000+00:00"


def test_timer_started_completes_the_saga() -> None:
    saga, _ = start()
    for second, step in enumerate(
        (Step.CREATE_ORDER, Step.GET_PAYMENT_INFO, Step.AUTHORIZE_PAYMENT, Step.UPDATE_ORDER_STATUS), start=1
    ):
        saga.handle(success_event(step), at(second), POLICY)

    commands = saga.handle(success_event(Step.START_TIMER), at(5), POLICY)

    assert commands == []
    assert saga.status is SagaStatus.COMPLETED
    assert saga.status.is_final
    assert saga.current_step is Step.START_TIMER
    assert saga.completed_at == at(5)
    assert saga.updated_at == at(5)
    assert saga.awaiting is None
    assert saga.due_at is None
    assert saga.error is None
    assert saga.pending_compensations == []
    assert saga.ignored_events == 0


def test_status_and_step_after_each_event() -> None:
    saga, _ = start()
    seen = [(saga.status, saga.current_step)]
    for second, step in enumerate(Step, start=1):
        saga.handle(success_event(step), at(second), POLICY)
        seen.append((saga.status, saga.current_step))

    assert seen == [
        (SagaStatus.STARTED, Step.CREATE_ORDER),
        (SagaStatus.STARTED, Step.GET_PAYMENT_INFO),
        (SagaStatus.STARTED, Step.AUTHORIZE_PAYMENT),
        (SagaStatus.STARTED, Step.UPDATE_ORDER_STATUS),
        (SagaStatus.STARTED, Step.START_TIMER),
        (SagaStatus.COMPLETED, Step.START_TIMER),
    ]


def test_history_holds_every_command_and_event_with_its_time() -> None:
    saga, commands = start()
    sent = list(commands)
    received = []
    for second, step in enumerate(Step, start=1):
        reply = success_event(step, when=at(second))
        received.append(reply)
        sent += saga.handle(reply, at(second), POLICY)

    assert [c.type for c in sent] == [
        "create_order",
        "get_payment_info",
        "authorize_payment",
        "update_order_status",
        "start_order_timer",
    ]
    assert len({c.message_id for c in sent}) == 5
    observed = [(e.at, e.kind, e.type, e.message_id) for e in saga.history]
    assert observed == [
        (NOW, HistoryKind.COMMAND, "create_order", sent[0].message_id),
        (at(1), HistoryKind.EVENT, "order.created", received[0].message_id),
        (at(1), HistoryKind.COMMAND, "get_payment_info", sent[1].message_id),
        (at(2), HistoryKind.EVENT, "user.payment_info_retrieved", received[1].message_id),
        (at(2), HistoryKind.COMMAND, "authorize_payment", sent[2].message_id),
        (at(3), HistoryKind.EVENT, "payment.authorized", received[2].message_id),
        (at(3), HistoryKind.COMMAND, "update_order_status", sent[3].message_id),
        (at(4), HistoryKind.EVENT, "order.status_updated", received[3].message_id),
        (at(4), HistoryKind.COMMAND, "start_order_timer", sent[4].message_id),
        (at(5), HistoryKind.EVENT, "timer.started", received[4].message_id),
        (at(5), HistoryKind.STATUS, "COMPLETED", None),
    ]
    assert all(entry.at.tzinfo is not None for entry in saga.history)


def test_event_without_message_id_is_applied_and_recorded_without_one() -> None:
    saga, _ = start()

    command = only(saga.handle(event("order.created", {"order_id": ORDER_ID}), at(1), POLICY))

    assert command.type == "get_payment_info"
    assert saga.history[1].kind is HistoryKind.EVENT
    assert saga.history[1].message_id is None


def test_order_id_and_payment_id_are_kept_as_strings() -> None:
    saga, _ = start()
    saga.handle(event("order.created", {"order_id": 42}), at(1), POLICY)
    saga.handle(success_event(Step.GET_PAYMENT_INFO), at(2), POLICY)

    command = only(saga.handle(event("payment.authorized", {"payment_id": 7}), at(3), POLICY))

    assert saga.order_id == "42"
    assert saga.payment_id == "7"
    assert command.payload["order_id"] == "42"


def test_status_updated_without_status_counts_as_created() -> None:
    saga, _ = start()
    for second, step in enumerate((Step.CREATE_ORDER, Step.GET_PAYMENT_INFO, Step.AUTHORIZE_PAYMENT), start=1):
        saga.handle(success_event(step), at(second), POLICY)

    command = only(saga.handle(event("order.status_updated", {}), at(4), POLICY))

    assert command.type == "start_order_timer"
    assert saga.status is SagaStatus.STARTED


def test_status_updated_to_something_else_fails_the_step() -> None:
    saga, _ = start()
    for second, step in enumerate((Step.CREATE_ORDER, Step.GET_PAYMENT_INFO, Step.AUTHORIZE_PAYMENT), start=1):
        saga.handle(success_event(step), at(second), POLICY)

    commands = saga.handle(event("order.status_updated", {"status": "REJECTED"}), at(4), POLICY)

    assert saga.status is SagaStatus.COMPENSATING
    assert [c.type for c in commands] == ["revert_payment"]
    assert saga.error is not None and "REJECTED" in saga.error


@pytest.mark.parametrize(
    ("status", "shown"),
    [(None, "null"), ("PENDING", '"PENDING"'), (5, "5"), (True, "true"), ({"a": 1}, "an object"), ("a\nb", '"a b"')],
)
def test_a_status_that_is_not_created_is_named_in_the_error_as_json_not_as_python(status: object, shown: str) -> None:
    saga, _ = start()
    for second, step in enumerate((Step.CREATE_ORDER, Step.GET_PAYMENT_INFO, Step.AUTHORIZE_PAYMENT), start=1):
        saga.handle(success_event(step), at(second), POLICY)

    saga.handle(event("order.status_updated", {"status": status}), at(4), POLICY)

    assert saga.error == f'UPDATE_ORDER_STATUS failed: status is {shown}, expected "CREATED"'


def test_each_saga_start_uses_a_new_message_id() -> None:
    first = only(CreateOrderSaga.start(SAGA_ID, CUSTOMER_ID, ORDER_DETAILS, 1, "USD", NOW, POLICY)[1])
    second = only(CreateOrderSaga.start(SAGA_ID, CUSTOMER_ID, ORDER_DETAILS, 1, "USD", NOW, POLICY)[1])

    assert first.message_id != second.message_id
