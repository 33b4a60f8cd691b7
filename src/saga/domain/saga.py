"""The create-order saga: five steps forward, compensations backward.

A saga waits for one reply at a time (`awaiting`). Each method takes what happened
(an event, the current time) and returns the commands to send; the caller stores
the saga and those commands in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

from saga.domain.messages import COMMANDS, Command, Event, JsonObject, format_timestamp, new_message_id
from saga.domain.policy import SagaPolicy


class Step(StrEnum):
    CREATE_ORDER = "CREATE_ORDER"
    GET_PAYMENT_INFO = "GET_PAYMENT_INFO"
    AUTHORIZE_PAYMENT = "AUTHORIZE_PAYMENT"
    UPDATE_ORDER_STATUS = "UPDATE_ORDER_STATUS"
    START_TIMER = "START_TIMER"


class Compensation(StrEnum):
    REVERT_PAYMENT = "REVERT_PAYMENT"
    CANCEL_ORDER = "CANCEL_ORDER"


class SagaStatus(StrEnum):
    STARTED = "STARTED"
    COMPENSATING = "COMPENSATING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    COMPENSATION_FAILED = "COMPENSATION_FAILED"

    @property
    def is_final(self) -> bool:
        return self not in (SagaStatus.STARTED, SagaStatus.COMPENSATING)


STEPS = tuple(Step)
STEP_COMMAND = {
    Step.CREATE_ORDER: "create_order",
    Step.GET_PAYMENT_INFO: "get_payment_info",
    Step.AUTHORIZE_PAYMENT: "authorize_payment",
    Step.UPDATE_ORDER_STATUS: "update_order_status",
    Step.START_TIMER: "start_order_timer",
}
COMPENSATION_COMMAND = {
    Compensation.REVERT_PAYMENT: "revert_payment",
    Compensation.CANCEL_ORDER: "cancel_order",
}
# The steps whose effect a compensation undoes, latest first: undo runs in reverse.
IGNORED_EVENTS_KEPT_IN_HISTORY = 50
UNDOES = ((Step.AUTHORIZE_PAYMENT, Compensation.REVERT_PAYMENT), (Step.CREATE_ORDER, Compensation.CANCEL_ORDER))


def compensation_plan(failed_step: Step, by_deadline: bool) -> list[Compensation]:
    """What a failure at `failed_step` undoes (CONTRACT.md, the compensation table).

    Completed steps are undone; the failed step itself too when it failed by deadline,
    because its effect is then unknown.
    """
    failed_at = STEPS.index(failed_step)
    return [
        compensation
        for step, compensation in UNDOES
        if STEPS.index(step) < failed_at or (step is failed_step and by_deadline)
    ]


class HistoryKind(StrEnum):
    COMMAND = "command"
    EVENT = "event"
    IGNORED = "ignored"
    DEADLINE = "deadline"
    STATUS = "status"


@dataclass(frozen=True)
class HistoryEntry:
    at: datetime
    kind: HistoryKind
    type: str
    message_id: str | None = None
    detail: str | None = None

    def to_dict(self) -> JsonObject:
        return {
            "at": format_timestamp(self.at),
            "kind": self.kind.value,
            "type": self.type,
            "message_id": self.message_id,
            "detail": self.detail,
        }

    @classmethod
    def from_dict(cls, data: JsonObject) -> HistoryEntry:
        return cls(
            datetime.fromisoformat(data["at"]),
            HistoryKind(data["kind"]),
            data["type"],
            data.get("message_id"),
            data.get("detail"),
        )


@dataclass(frozen=True)
class Awaiting:
    """The command whose reply the saga waits for, and when it acts next without one."""

    command_type: str
    message_id: str
    payload: JsonObject
    attempts: int
    due_at: datetime
    sent: bool = True
    """False after a compensation was rejected: the re-send waits for its backoff."""

    def to_dict(self) -> JsonObject:
        return {
            "command_type": self.command_type,
            "message_id": self.message_id,
            "payload": self.payload,
            "attempts": self.attempts,
            "due_at": format_timestamp(self.due_at),
            "sent": self.sent,
        }

    @classmethod
    def from_dict(cls, data: JsonObject) -> Awaiting:
        return cls(
            data["command_type"],
            data["message_id"],
            data["payload"],
            int(data["attempts"]),
            datetime.fromisoformat(data["due_at"]),
            bool(data.get("sent", True)),
        )


@dataclass
class CreateOrderSaga:
    id: str
    customer_id: str
    order_details: JsonObject
    amount_cents: int
    currency: str
    status: SagaStatus
    current_step: Step
    created_at: datetime
    updated_at: datetime
    awaiting: Awaiting | None = None
    compensations: list[Compensation] = field(default_factory=list)
    """Compensations still to run after the one awaited, in the order they run."""
    order_id: str | None = None
    payment_id: str | None = None
    payment_info: JsonObject | None = None
    error: str | None = None
    completed_at: datetime | None = None
    cancel_requested: bool = False
    ignored_events: int = 0
    history: list[HistoryEntry] = field(default_factory=list)
    version: int = 0
    """Bumped by the repository on every save; a stale version is a concurrency conflict."""

    # ----------------------------------------------------------------- start

    @classmethod
    def start(
        cls,
        saga_id: str,
        customer_id: str,
        order_details: JsonObject,
        amount_cents: int,
        currency: str,
        now: datetime,
        policy: SagaPolicy,
    ) -> tuple[CreateOrderSaga, list[Command]]:
        saga = cls(
            id=saga_id,
            customer_id=customer_id,
            order_details=order_details,
            amount_cents=amount_cents,
            currency=currency,
            status=SagaStatus.STARTED,
            current_step=Step.CREATE_ORDER,
            created_at=now,
            updated_at=now,
        )
        command = saga._send(
            "create_order",
            {"customer_id": customer_id, "order_details": order_details, "saga_id": saga_id},
            now,
            policy,
        )
        return saga, [command]

    @property
    def due_at(self) -> datetime | None:
        """When the saga must act without a reply (re-send, give up); None once final."""
        return self.awaiting.due_at if self.awaiting is not None else None

    # ---------------------------------------------------------------- events

    def handle(self, event: Event, now: datetime, policy: SagaPolicy) -> list[Command]:
        """Applies a participant's event; one that does not fit the current state changes nothing."""
        awaiting = self.awaiting
        if awaiting is None or not awaiting.sent:
            return self._ignore(event, now, "saga is not waiting for a reply")
        reply = COMMANDS[awaiting.command_type].reply
        if event.type not in (reply.success, reply.failure):
            return self._ignore(event, now, f"waiting for {reply.success} or {reply.failure}")
        self._record(now, HistoryKind.EVENT, event.type, event.message_id, event.error)
        if self.status is SagaStatus.COMPENSATING:
            if event.type == reply.success:
                return self._next_compensation(now, policy)
            return self._compensation_rejected(event.error, now, policy)
        if event.type == reply.failure:
            return self._fail_step(f"{self.current_step} failed: {event.error or event.type}", False, now, policy)
        return self._step_succeeded(event, now, policy)

    def _step_succeeded(self, event: Event, now: datetime, policy: SagaPolicy) -> list[Command]:
        payload = event.payload
        step = self.current_step
        if step is Step.CREATE_ORDER:
            self.order_id = str(payload["order_id"])
            return [self._advance(Step.GET_PAYMENT_INFO, {"user_id": self.customer_id}, now, policy)]
        if step is Step.GET_PAYMENT_INFO:
            self.payment_info = dict(payload["payment_info"])
            return [
                self._advance(
                    Step.AUTHORIZE_PAYMENT,
                    {
                        "order_id": self.order_id,
                        "customer_id": self.customer_id,
                        "amount_cents": self.amount_cents,
                        "currency": self.currency,
                        "payment_info": self.payment_info,
                    },
                    now,
                    policy,
                )
            ]
        if step is Step.AUTHORIZE_PAYMENT:
            self.payment_id = str(payload["payment_id"])
            return [
                self._advance(Step.UPDATE_ORDER_STATUS, {"order_id": self.order_id, "status": "CREATED"}, now, policy)
            ]
        if step is Step.UPDATE_ORDER_STATUS:
            status = payload.get("status", "CREATED")
            if status != "CREATED":
                return self._fail_step(f"order status became {status!r}, expected 'CREATED'", False, now, policy)
            timeout_at = format_timestamp(now + policy.order_timer)
            return [
                self._advance(
                    Step.START_TIMER,
                    {"order_id": self.order_id, "customer_id": self.customer_id, "timeout_at": timeout_at},
                    now,
                    policy,
                )
            ]
        self.awaiting = None
        self.completed_at = now
        self._set_status(SagaStatus.COMPLETED, now)
        return []

    def note_duplicate(self, event: Event, now: datetime) -> None:
        """Records a message that was processed before (same message_id): it changes nothing."""
        self._ignore(event, now, "duplicate message_id")

    # ------------------------------------------------------------- deadlines

    def on_deadline(self, now: datetime, policy: SagaPolicy) -> list[Command]:
        """Acts on a passed deadline: re-send, or give up on the step or compensation."""
        awaiting = self.awaiting
        if awaiting is None or now < awaiting.due_at:
            return []
        if self.status is SagaStatus.COMPENSATING:
            if not awaiting.sent:
                return [self._resend(awaiting, now, policy.step_deadline)]
            self._record(now, HistoryKind.DEADLINE, awaiting.command_type, awaiting.message_id, None)
            if awaiting.attempts >= policy.compensation_attempts:
                return self._give_up_compensation("no reply", now)
            return [self._resend(awaiting, now, policy.step_deadline)]
        self._record(now, HistoryKind.DEADLINE, awaiting.command_type, awaiting.message_id, None)
        if awaiting.attempts <= policy.step_resends:
            return [self._resend(awaiting, now, policy.step_deadline)]
        reason = f"{self.current_step} failed: no reply after {awaiting.attempts} attempts"
        return self._fail_step(reason, True, now, policy)

    def postpone_deadline(self, now: datetime, policy: SagaPolicy) -> None:
        """Restarts the wait for a command not yet handed to the transport: a deadline
        counts from delivery, since no participant can answer what it never got."""
        if self.awaiting is not None:
            self.awaiting = replace(self.awaiting, due_at=now + policy.step_deadline)
            self.updated_at = now

    # ------------------------------------------------------------ cancelling

    def cancel(self, reason: str, now: datetime, policy: SagaPolicy) -> list[Command]:
        """Stops a saga moving forward and undoes what it did; the saga ends CANCELLED."""
        if self.status is not SagaStatus.STARTED:
            return []
        self.cancel_requested = True
        return self._fail_step(f"cancelled: {reason}", True, now, policy)

    # -------------------------------------------------------------- internal

    def _advance(self, step: Step, payload: JsonObject, now: datetime, policy: SagaPolicy) -> Command:
        self.current_step = step
        return self._send(STEP_COMMAND[step], payload, now, policy)

    def _send(self, command_type: str, payload: JsonObject, now: datetime, policy: SagaPolicy) -> Command:
        message_id = new_message_id()
        self.awaiting = Awaiting(command_type, message_id, payload, 1, now + policy.step_deadline)
        self._record(now, HistoryKind.COMMAND, command_type, message_id, None)
        return Command(command_type, self.id, payload, message_id, now)

    def _resend(self, awaiting: Awaiting, now: datetime, wait: timedelta) -> Command:
        self.awaiting = replace(awaiting, attempts=awaiting.attempts + 1, due_at=now + wait, sent=True)
        self._record(
            now, HistoryKind.COMMAND, awaiting.command_type, awaiting.message_id, f"attempt {awaiting.attempts + 1}"
        )
        return Command(awaiting.command_type, self.id, awaiting.payload, awaiting.message_id, now)

    def _fail_step(self, reason: str, by_deadline: bool, now: datetime, policy: SagaPolicy) -> list[Command]:
        self.error = reason
        self.compensations = compensation_plan(self.current_step, by_deadline)
        self._set_status(SagaStatus.COMPENSATING, now)
        return self._next_compensation(now, policy)

    def _next_compensation(self, now: datetime, policy: SagaPolicy) -> list[Command]:
        if not self.compensations:
            self.awaiting = None
            self.completed_at = now
            self._set_status(SagaStatus.CANCELLED if self.cancel_requested else SagaStatus.FAILED, now)
            return []
        compensation = self.compensations.pop(0)
        payload: JsonObject
        if compensation is Compensation.REVERT_PAYMENT:
            payload = {"payment_id": self.payment_id, "order_id": self.order_id, "saga_id": self.id}
        else:
            payload = {"order_id": self.order_id, "saga_id": self.id}
        payload["reason"] = self.error
        return [self._send(COMPENSATION_COMMAND[compensation], payload, now, policy)]

    def _compensation_rejected(self, error: str | None, now: datetime, policy: SagaPolicy) -> list[Command]:
        awaiting = self.awaiting
        assert awaiting is not None
        if awaiting.attempts >= policy.compensation_attempts:
            return self._give_up_compensation(error or "rejected", now)
        # The participant processed this message and said no: the retry is a new message.
        self.awaiting = replace(
            awaiting, message_id=new_message_id(), due_at=now + policy.backoff(awaiting.attempts), sent=False
        )
        self.updated_at = now
        return []

    def _give_up_compensation(self, why: str, now: datetime) -> list[Command]:
        awaiting = self.awaiting
        assert awaiting is not None
        self.error = f"{self.error}; {awaiting.command_type} not confirmed after {awaiting.attempts} attempts: {why}"
        self.awaiting = None
        self.completed_at = now
        self._set_status(SagaStatus.COMPENSATION_FAILED, now)
        return []

    def _ignore(self, event: Event, now: datetime, why: str) -> list[Command]:
        self.ignored_events += 1
        # A flood of duplicates must not grow the saga without bound: the count keeps the rest.
        if self.ignored_events <= IGNORED_EVENTS_KEPT_IN_HISTORY:
            self._record(now, HistoryKind.IGNORED, event.type, event.message_id, why)
        return []

    def _set_status(self, status: SagaStatus, now: datetime) -> None:
        self.status = status
        self._record(now, HistoryKind.STATUS, status.value, None, self.error)

    def _record(self, now: datetime, kind: HistoryKind, type_: str, message_id: str | None, detail: str | None) -> None:
        self.history.append(HistoryEntry(now, kind, type_, message_id, detail))
        self.updated_at = now
