"""Builders for the domain unit tests: a fixed clock, events, and sagas driven to a step.

Nothing here performs I/O; time is a plain datetime the tests move by hand.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from saga.domain.messages import Command, Event
from saga.domain.policy import SagaPolicy
from saga.domain.saga import STEPS, CreateOrderSaga, HistoryKind, SagaStatus, Step
from saga.domain.steps import STEPS as STEP_SPECS

NOW = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)
SAGA_ID = "6f1c2a8e-3b7d-4c55-9a0e-0d6b2f9e4a11"
CUSTOMER_ID = "cust_123"
ORDER_ID = "order-42"
PAYMENT_ID = "pay-7"
# As the platform's user service reports it, with a field of our own beside.
PAYMENT_INFO: dict[str, Any] = {"stripeCustomerId": "cus_9", "paymentMethodId": "pm_4", "billing": {"zip": "02139"}}
# The seed's example order: 12.99 x 1.
ORDER_DETAILS: dict[str, Any] = {
    "foodItems": [{"name": "Burger", "price": 12.99, "quantity": 1}],
    "deliveryLocation": "North Campus",
}
AMOUNT_CENTS = 1299
CURRENCY = "USD"
POLICY = SagaPolicy()

# Values the saga keeps from each step's success reply; the event types come from the saga's table.
RECORDED: dict[str, Any] = {"order_id": ORDER_ID, "payment_info": PAYMENT_INFO, "payment_id": PAYMENT_ID}
SUCCESS: dict[Step, tuple[str, dict[str, Any]]] = {
    spec.step: (
        spec.action.success,
        {**({spec.records: RECORDED[spec.records]} if spec.records else {}), **dict(spec.expects)},
    )
    for spec in STEP_SPECS
}
FAILURE: dict[Step, str] = {spec.step: spec.action.failures[0] for spec in STEP_SPECS}
COMMAND_OF: dict[Step, str] = {spec.step: spec.action.command for spec in STEP_SPECS}


def at(seconds: float) -> datetime:
    """The fixed clock moved forward by `seconds`."""
    return NOW + timedelta(seconds=seconds)


def event(
    type_: str,
    payload: dict[str, Any] | None = None,
    when: datetime = NOW,
    message_id: str | None = None,
    saga_id: str = SAGA_ID,
) -> Event:
    return Event(type_, saga_id, {} if payload is None else payload, when, message_id)


def success_event(step: Step, when: datetime = NOW, message_id: str | None = None) -> Event:
    type_, payload = SUCCESS[step]
    return event(type_, dict(payload), when, message_id if message_id is not None else str(uuid.uuid4()))


def failure_event(step: Step, error: str = "boom", when: datetime = NOW) -> Event:
    return event(FAILURE[step], {"error": error}, when, str(uuid.uuid4()))


def start(policy: SagaPolicy = POLICY, now: datetime = NOW) -> tuple[CreateOrderSaga, list[Command]]:
    return CreateOrderSaga.start(SAGA_ID, CUSTOMER_ID, ORDER_DETAILS, AMOUNT_CENTS, CURRENCY, now, policy)


def saga_at(step: Step, policy: SagaPolicy = POLICY, now: datetime = NOW) -> tuple[CreateOrderSaga, Command]:
    """A STARTED saga that has sent `step`'s command and waits for its reply; and that command."""
    saga, commands = start(policy, now)
    for passed in STEPS[: STEPS.index(step)]:
        commands = saga.handle(success_event(passed, now), now, policy)
    assert saga.status is SagaStatus.STARTED and saga.current_step is step
    assert len(commands) == 1 and commands[0].type == COMMAND_OF[step]
    return saga, commands[0]


def completed_saga(policy: SagaPolicy = POLICY, now: datetime = NOW) -> CreateOrderSaga:
    saga, _ = saga_at(Step.START_TIMER, policy, now)
    assert saga.handle(success_event(Step.START_TIMER, now), now, policy) == []
    assert saga.status is SagaStatus.COMPLETED
    return saga


@dataclass
class DeadlineFailure:
    """What exhausting a step's deadlines produced: the time it failed and what it sent."""

    now: datetime
    commands: list[Command]


def exhaust_step_deadlines(saga: CreateOrderSaga, policy: SagaPolicy = POLICY) -> DeadlineFailure:
    """Lets the awaited step's deadline pass until its re-sends are used up and it fails."""
    assert saga.status is SagaStatus.STARTED
    for _ in range(policy.step_resends):
        assert saga.due_at is not None
        resent = saga.on_deadline(saga.due_at, policy)
        assert len(resent) == 1 and saga.status is SagaStatus.STARTED
    assert saga.due_at is not None
    when = saga.due_at
    commands = saga.on_deadline(when, policy)
    assert saga.status is not SagaStatus.STARTED
    return DeadlineFailure(when, commands)


def state(saga: CreateOrderSaga) -> dict[str, Any]:
    """Everything an event that does not fit must leave alone (all but history, count, updated_at)."""
    return {
        "id": saga.id,
        "customer_id": saga.customer_id,
        "order_details": saga.order_details,
        "amount_cents": saga.amount_cents,
        "currency": saga.currency,
        "status": saga.status,
        "current_step": saga.current_step,
        "created_at": saga.created_at,
        "awaiting": saga.awaiting,
        "compensations": list(saga.compensations),
        "order_id": saga.order_id,
        "payment_id": saga.payment_id,
        "payment_info": saga.payment_info,
        "error": saga.error,
        "completed_at": saga.completed_at,
        "cancel_requested": saga.cancel_requested,
        "version": saga.version,
    }


def kinds(saga: CreateOrderSaga, kind: HistoryKind) -> list[str]:
    return [entry.type for entry in saga.history if entry.kind is kind]
