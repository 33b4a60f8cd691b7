"""The create-order saga, declared once: its five steps and the compensations that undo them.

Read top to bottom, `STEPS` and `UNDO` are the whole business transaction
(docs/contract.md, "The saga" and "Command payloads"): each step's command, the
participant that serves it, the replies that answer it, how its payload is built,
what the saga keeps from the success reply, the resource that reply yields and the
compensation that undoes that resource. The state machine (`saga.py`), the
simulated participants, the API's enums and the tests read these tables; a new step
is one more row.

Topics, URLs and transports are configuration of the adapters, not part of this table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, NamedTuple, Protocol

from saga.domain.policy import SagaPolicy

JsonObject = dict[str, Any]


class Participant(StrEnum):
    """The four services the saga coordinates; transports map each to a topic or URL."""

    ORDER = "order"
    USER = "user"
    PAYMENT = "payment"
    TIMER = "timer"


class Step(StrEnum):
    CREATE_ORDER = "CREATE_ORDER"
    GET_PAYMENT_INFO = "GET_PAYMENT_INFO"
    AUTHORIZE_PAYMENT = "AUTHORIZE_PAYMENT"
    UPDATE_ORDER_STATUS = "UPDATE_ORDER_STATUS"
    START_TIMER = "START_TIMER"


class Compensation(StrEnum):
    REVERT_PAYMENT = "REVERT_PAYMENT"
    CANCEL_ORDER = "CANCEL_ORDER"


class Resource(StrEnum):
    """What a step creates at a participant and a compensation must undo."""

    ORDER = "order"
    PAYMENT = "payment"

    @property
    def id_field(self) -> str:
        """The payload field naming one resource of this kind (`order_id`, `payment_id`)."""
        return f"{self.value}_id"


class ResourceRef(NamedTuple):
    """One resource at a participant, by its kind and id: an order and a payment with the
    same id text are two resources."""

    resource: Resource
    id: str


class SagaFacts(Protocol):
    """What a payload builder may read of a saga."""

    @property
    def id(self) -> str: ...
    @property
    def customer_id(self) -> str: ...
    @property
    def order_details(self) -> JsonObject: ...
    @property
    def amount_cents(self) -> int: ...
    @property
    def currency(self) -> str: ...
    @property
    def order_id(self) -> str | None: ...
    @property
    def payment_info(self) -> JsonObject | None: ...


@dataclass(frozen=True)
class Action:
    """A command and the event types that answer it."""

    command: str
    participant: Participant
    success: str
    failures: tuple[str, ...]
    """Every event type that rejects the command (the real payment service rejects
    `revert_payment` with `payment.failed`, our contract says `payment.release_failed`)."""

    @property
    def replies(self) -> tuple[str, ...]:
        return (self.success, *self.failures)


StepPayload = Callable[[SagaFacts, datetime, SagaPolicy], JsonObject]
UndoPayload = Callable[[SagaFacts, str | None, str], JsonObject]


@dataclass(frozen=True)
class StepSpec:
    step: Step
    action: Action
    payload: StepPayload
    """The command's payload, from what the saga knows when the step begins."""
    records: str | None = None
    """The success reply's payload field the saga keeps (`order_id`, `payment_info`, `payment_id`)."""
    yields: Resource | None = None
    """The resource the success reply names (by `records`), undone by `UNDO[yields]`."""
    expects: Mapping[str, str] = field(default_factory=dict)
    """Values the success reply must carry when it names the field, else the step fails."""


@dataclass(frozen=True)
class UndoSpec:
    compensation: Compensation
    action: Action
    undoes: Resource
    payload: UndoPayload
    """The compensation's payload, from the saga, the resource's id (None while unknown) and the reason."""


def format_timestamp(moment: datetime) -> str:
    """The contract's time text: ISO 8601 in UTC with its offset, to the microsecond
    (`2026-11-28T12:00:00.000000+00:00`), as payload fields such as `timeout_at` carry it."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _authorize_payment(saga: SagaFacts, now: datetime, policy: SagaPolicy) -> JsonObject:
    """Our fields, and the nested form the platform's payment service reads (docs/contract.md, "Command payloads")."""
    info = saga.payment_info or {}
    payload: JsonObject = {
        "order_id": saga.order_id,
        "customer_id": saga.customer_id,
        "amount_cents": saga.amount_cents,
        "currency": saga.currency,
        "payment_info": info,
        "customer": {
            "clerkUserId": saga.customer_id,
            "stripeCustomerId": info.get("stripeCustomerId"),
            "userStripeCard": {"payment_method_id": info.get("paymentMethodId")},
        },
        "order": {"amount": saga.amount_cents, "description": f"Payment for order {saga.order_id}"},
    }
    if policy.payment_return_url is not None:
        payload["return_url"] = policy.payment_return_url
    return payload


STEPS: tuple[StepSpec, ...] = (
    StepSpec(
        Step.CREATE_ORDER,
        Action("create_order", Participant.ORDER, "order.created", ("order.creation_failed",)),
        lambda saga, now, policy: {
            "customer_id": saga.customer_id,
            "order_details": saga.order_details,
            "saga_id": saga.id,
        },
        records="order_id",
        yields=Resource.ORDER,
    ),
    StepSpec(
        Step.GET_PAYMENT_INFO,
        Action("get_payment_info", Participant.USER, "user.payment_info_retrieved", ("user.payment_info_failed",)),
        lambda saga, now, policy: {"user_id": saga.customer_id},
        records="payment_info",
    ),
    StepSpec(
        Step.AUTHORIZE_PAYMENT,
        Action("authorize_payment", Participant.PAYMENT, "payment.authorized", ("payment.failed",)),
        _authorize_payment,
        records="payment_id",
        yields=Resource.PAYMENT,
    ),
    StepSpec(
        Step.UPDATE_ORDER_STATUS,
        Action("update_order_status", Participant.ORDER, "order.status_updated", ("order.status_update_failed",)),
        lambda saga, now, policy: {"order_id": saga.order_id, "status": "CREATED"},
        expects={"status": "CREATED"},
    ),
    StepSpec(
        Step.START_TIMER,
        Action("start_order_timer", Participant.TIMER, "timer.started", ("timer.failed",)),
        lambda saga, now, policy: {
            "order_id": saga.order_id,
            "customer_id": saga.customer_id,
            "timeout_at": format_timestamp(now + policy.order_timer),
        },
    ),
)

# Listed in the order compensations run: the latest step's resource is undone first.
UNDO: Mapping[Resource, UndoSpec] = {
    Resource.PAYMENT: UndoSpec(
        Compensation.REVERT_PAYMENT,
        Action("revert_payment", Participant.PAYMENT, "payment.released", ("payment.release_failed", "payment.failed")),
        Resource.PAYMENT,
        lambda saga, payment_id, reason: {
            "payment_id": payment_id,
            "order_id": saga.order_id,
            "saga_id": saga.id,
            "reason": reason,
        },
    ),
    Resource.ORDER: UndoSpec(
        Compensation.CANCEL_ORDER,
        Action("cancel_order", Participant.ORDER, "order.cancelled", ("order.cancellation_failed",)),
        Resource.ORDER,
        lambda saga, order_id, reason: {"order_id": order_id, "saga_id": saga.id, "reason": reason},
    ),
}

# ------------------------------------------------------------------ derived lookups

STEP_ORDER: tuple[Step, ...] = tuple(spec.step for spec in STEPS)
STEP: Mapping[Step, StepSpec] = {spec.step: spec for spec in STEPS}
UNDO_BY_COMPENSATION: Mapping[Compensation, UndoSpec] = {spec.compensation: spec for spec in UNDO.values()}
UNDO_ORDER: tuple[Compensation, ...] = tuple(spec.compensation for spec in UNDO.values())
ACTIONS: Mapping[str, Action] = {
    **{spec.action.command: spec.action for spec in STEPS},
    **{spec.action.command: spec.action for spec in UNDO.values()},
}
"""Every command the saga sends, by its type."""
STEP_OF_RESOURCE: Mapping[Resource, StepSpec] = {spec.yields: spec for spec in STEPS if spec.yields is not None}
EVENT_PARTICIPANT: Mapping[str, Participant] = {
    event_type: action.participant for action in ACTIONS.values() for event_type in action.replies
}
EVENT_TYPES = frozenset(EVENT_PARTICIPANT)
REQUIRED_EVENT_FIELDS: Mapping[str, tuple[str, ...]] = {
    spec.action.success: (spec.records,) for spec in STEPS if spec.records is not None
}
"""Payload fields an event must carry for the saga to use it (docs/contract.md, "Event payloads")."""
OBJECT_EVENT_FIELDS: Mapping[str, tuple[str, ...]] = {
    spec.action.success: (spec.records,) for spec in STEPS if spec.records is not None and spec.yields is None
}
"""Of those, the ones that are JSON objects; the others are resource ids."""
EVENT_RESOURCE: Mapping[str, Resource] = {
    **{spec.action.success: spec.yields for spec in STEPS if spec.yields is not None},
    **{event: spec.undoes for spec in UNDO.values() for event in spec.action.replies},
}
"""The kind of resource an event may name by id: a step's success reply that yields one,
and every reply to the compensation that undoes one."""
ID_EVENT_FIELDS: Mapping[str, str] = {event: resource.id_field for event, resource in EVENT_RESOURCE.items()}
"""The resource id an event may name: ids are strings, an integer is kept as its decimal
text, anything else is a bad message (docs/contract.md, "Event payloads")."""


def compensation_plan(failed_step: Step, by_deadline: bool) -> list[Compensation]:
    """What a failure at `failed_step` undoes, in the order it runs (docs/contract.md, the
    compensation table): every resource of a step before it, and its own resource too
    when it failed by deadline, because its effect is then unknown."""
    failed_at = STEP_ORDER.index(failed_step)
    return [
        spec.compensation
        for resource, spec in UNDO.items()
        if (at := STEP_ORDER.index(STEP_OF_RESOURCE[resource].step)) < failed_at or (at == failed_at and by_deadline)
    ]
