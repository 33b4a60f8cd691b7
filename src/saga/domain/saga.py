"""The create-order saga: five steps forward, compensations backward.

The steps and compensations are declared in `steps.py`; this module is the state
machine that runs them. A saga waits for one reply at a time (`awaiting`). Each
method takes what happened (an event, the current time) and returns the commands to
send; the caller stores the saga and those commands in one transaction.

Undo work (docs/contract.md, "Compensations" and "No orphan resources") is a list of
`Undo` records: the compensations a failure plans, and the resources that replies
named but the saga does not hold. They run one at a time; every one runs even when
another is given up; a confirmation counts whenever it arrives.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType

from saga.domain.messages import Command, Event, JsonObject, new_message_id
from saga.domain.policy import SagaPolicy
from saga.domain.steps import (
    EVENT_RESOURCE,
    STEP,
    STEP_OF_RESOURCE,
    STEP_ORDER,
    UNDO,
    UNDO_BY_COMPENSATION,
    UNDO_ORDER,
    Compensation,
    Resource,
    ResourceRef,
    Step,
    StepSpec,
    UndoSpec,
    compensation_plan,
)

__all__ = [
    "STEPS",
    "Awaiting",
    "Compensation",
    "CreateOrderSaga",
    "HistoryEntry",
    "HistoryKind",
    "NotCancellable",
    "NothingToRetry",
    "ResourceRef",
    "SagaStatus",
    "Step",
    "Undo",
    "UndoStatus",
    "compensation_plan",
    "failure_reason",
    "named_resource",
]

STEPS = STEP_ORDER
IGNORED_EVENTS_KEPT_IN_HISTORY = 50
MAX_ERROR_CHARS = 500
"""The saga's `error` and a compensation's `reason` (docs/contract.md, "Event payloads")."""
MAX_HISTORY_DETAIL_CHARS = 4000


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


class NotCancellable(Exception):
    """A cancel of a saga past STARTED: failing, cancelling or ended (docs/contract.md, "Cancel and retry")."""


class NothingToRetry(Exception):
    """An operator's retry found no unconfirmed compensation or clean-up to run again."""


def bounded(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def one_line(text: str) -> str:
    """Control characters (line breaks and NUL included) become spaces; runs of spaces
    collapse; half of a surrogate pair, which no database stores, becomes U+FFFD."""
    cleaned = "".join(_ONE_LINE.get(unicodedata.category(char), char) for char in text)
    return " ".join(cleaned.split())


_ONE_LINE = {"Cc": " ", "Zl": " ", "Zp": " ", "Cs": "\ufffd"}


def failure_reason(payload: JsonObject) -> str | None:
    """A failure event's reason: `error` and `message` joined on one line, control
    characters removed (docs/contract.md, "Event payloads"); None when it gives neither."""
    parts = [one_line(str(payload[name])) for name in ("error", "message") if payload.get(name) not in (None, "")]
    parts = [part for part in parts if part]
    return ": ".join(parts) if parts else None


class HistoryKind(StrEnum):
    COMMAND = "command"
    EVENT = "event"
    IGNORED = "ignored"
    DEADLINE = "deadline"
    STATUS = "status"
    COMPENSATION = "compensation"
    """An undo's outcome: confirmed, given up, or a resource the saga learned it must undo."""
    OPERATOR = "operator"


@dataclass(frozen=True)
class HistoryEntry:
    at: datetime
    kind: HistoryKind
    type: str
    message_id: str | None = None
    detail: str | None = None


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
    queued_at: datetime | None = None
    """When the command was last handed to the outbox (None on sagas stored before this was kept)."""


class UndoStatus(StrEnum):
    PENDING = "pending"
    """Waiting for its turn (or, on a saga still moving forward, for the saga to stop)."""
    RUNNING = "running"
    """Sent and awaited, or waiting out its backoff after a rejection."""
    CONFIRMED = "confirmed"
    UNKNOWN = "unknown"
    """Never confirmed, and the resource's id was never reported: it may not exist."""
    UNCONFIRMED = "unconfirmed"
    """Given up on a known resource: an operator must look."""


@dataclass(frozen=True)
class Undo:
    """One resource to undo, and how far its compensation got."""

    compensation: Compensation
    resource_id: str | None
    status: UndoStatus = UndoStatus.PENDING
    cleanup: bool = False
    """Runs after the saga ended: listed in its `cleanups`, its status unchanged by it."""
    reason: str | None = None
    """Sent as the compensation's `reason`; the saga's error when None."""
    outcome: str | None = None
    """Why it was given up (`not confirmed after 3 attempts: no reply`)."""

    @property
    def spec(self) -> UndoSpec:
        return UNDO_BY_COMPENSATION[self.compensation]

    @property
    def command_type(self) -> str:
        return self.spec.action.command


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
    compensations: list[Undo] = field(default_factory=list)
    """Every undo of this saga, compensations and clean-ups, in the order they were planned."""
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
        first = STEP[STEPS[0]]
        saga = cls(
            id=saga_id,
            customer_id=customer_id,
            order_details=order_details,
            amount_cents=amount_cents,
            currency=currency,
            status=SagaStatus.STARTED,
            current_step=first.step,
            created_at=now,
            updated_at=now,
        )
        return saga, [saga._send(first.action.command, first.payload(saga, now, policy), now, policy)]

    # ------------------------------------------------------------ read model

    @property
    def due_at(self) -> datetime | None:
        """When the saga must act without a reply (re-send, give up); None when nothing is awaited."""
        return self.awaiting.due_at if self.awaiting is not None else None

    @property
    def pending_compensations(self) -> list[Undo]:
        """Compensations not yet settled (waiting their turn or running)."""
        return [undo for undo in self.compensations if not undo.cleanup and undo.status in _OPEN]

    @property
    def cleanups(self) -> list[Undo]:
        """Undo of resources named after the saga ended (docs/contract.md, "No orphan resources")."""
        return [undo for undo in self.compensations if undo.cleanup]

    @property
    def has_unconfirmed_cleanup(self) -> bool:
        return any(undo.status is UndoStatus.UNCONFIRMED for undo in self.cleanups)

    # ---------------------------------------------------------------- events

    @property
    def held_resources(self) -> frozenset[ResourceRef]:
        """Every resource the saga holds: its order and payment, and each one its
        compensations and clean-ups name (docs/contract.md, "No orphan resources")."""
        return frozenset(
            ResourceRef(resource, resource_id) for resource in UNDO for resource_id in self._held(resource)
        )

    def holds(self, ref: ResourceRef) -> bool:
        return ref.id in self._held(ref.resource)

    def handle(
        self,
        event: Event,
        now: datetime,
        policy: SagaPolicy,
        held_elsewhere: Mapping[ResourceRef, str] = MappingProxyType({}),
    ) -> list[Command]:
        """Applies a participant's event; one that does not fit the current state changes nothing
        but the history and the count of ignored events.

        `held_elsewhere` gives, for resources other sagas hold, the id of one saga holding
        each (at least the resource this event names, when another saga holds it). An event
        naming a resource another saga holds and this one does not is not about this saga:
        it is ignored, and nothing is adopted or undone (docs/contract.md, "No orphan resources")."""
        named = named_resource(event)
        if named is not None:
            holder = held_elsewhere.get(named)
            if holder is not None and holder != self.id and not self.holds(named):
                why = f"{named.resource.id_field} {named.id} is held by saga {holder}, not by this one"
                return self._ignore(event, now, _detail(why))
        if self.status is SagaStatus.STARTED and self.awaiting is not None:
            spec = STEP[self.current_step]
            if event.type == spec.action.success:
                self._record(now, HistoryKind.EVENT, event.type, event.message_id, None)
                return self._step_succeeded(spec, event, now, policy)
            if event.type in spec.action.failures:
                reason = failure_reason(event.payload) or event.type
                self._record(now, HistoryKind.EVENT, event.type, event.message_id, _detail(reason))
                return self._fail_step(f"{self.current_step} failed: {reason}", False, now, policy)
        for undo_spec in UNDO.values():
            if event.type in undo_spec.action.replies:
                commands = self._undo_reply(undo_spec, event, now, policy)
                if commands is not None:
                    return commands
        for resource, step_spec in STEP_OF_RESOURCE.items():
            if event.type == step_spec.action.success and self._reached(step_spec.step):
                resource_id = _resource_id(event, resource)
                if resource_id is not None and resource_id not in self._held(resource):
                    return self._not_held(resource, resource_id, event, now, policy)
        return self._ignore(event, now, self._why_not_fitting(event))

    def note_duplicate(self, event: Event, now: datetime) -> None:
        """Records a message that was processed before (same message_id): it changes nothing."""
        self._ignore(event, now, "duplicate message_id")

    def _step_succeeded(self, spec: StepSpec, event: Event, now: datetime, policy: SagaPolicy) -> list[Command]:
        if spec.records is not None:
            value = event.payload[spec.records]
            if spec.yields is not None:
                value = _resource_id(event, spec.yields)
            setattr(self, spec.records, value)  # the table names one of this class's fields
        for name, expected in spec.expects.items():
            got = event.payload.get(name, expected)
            if got != expected:
                return self._fail_step(
                    f"{spec.step} failed: {name} is {_shown(got)}, expected {_shown(expected)}", False, now, policy
                )
        following = STEPS.index(spec.step) + 1
        if following < len(STEPS):
            step = STEP[STEPS[following]]
            self.current_step = step.step
            return [self._send(step.action.command, step.payload(self, now, policy), now, policy)]
        self.awaiting = None
        self.completed_at = now
        self._set_status(SagaStatus.COMPLETED, now)
        # Resources named twice while the saga moved forward are undone now that it stopped.
        self.compensations = [replace(undo, cleanup=True) for undo in self.compensations]
        return self._run_next_undo(now, policy)

    # ------------------------------------------------------------- deadlines

    def on_deadline(self, now: datetime, policy: SagaPolicy) -> list[Command]:
        """Acts on a passed deadline: re-send, or give up on the step or compensation."""
        awaiting = self.awaiting
        if awaiting is None or now < awaiting.due_at:
            return []
        running = self._running()
        if running is not None:
            if not awaiting.sent:
                return [self._resend(awaiting, now, policy.step_deadline)]
            self._record(now, HistoryKind.DEADLINE, awaiting.command_type, awaiting.message_id, None)
            if awaiting.attempts >= policy.compensation_attempts:
                return self._give_up(running, "no reply", now, policy)
            return [self._resend(awaiting, now, policy.step_deadline)]
        self._record(now, HistoryKind.DEADLINE, awaiting.command_type, awaiting.message_id, None)
        if awaiting.attempts <= policy.step_resends:
            return [self._resend(awaiting, now, policy.step_deadline)]
        return self._fail_step(
            f"{self.current_step} failed: no reply after {awaiting.attempts} attempts", True, now, policy
        )

    def postpone_deadline(self, now: datetime, policy: SagaPolicy) -> None:
        """Restarts the wait for a command not yet handed to the transport: a deadline
        counts from delivery, since no participant can answer what it never got."""
        if self.awaiting is not None:
            self.awaiting = replace(self.awaiting, due_at=now + policy.step_deadline)
            self.updated_at = now

    # ------------------------------------------------------- operator actions

    def cancel(self, reason: str, now: datetime, policy: SagaPolicy) -> list[Command]:
        """Stops a saga moving forward and undoes what it did; the saga ends CANCELLED."""
        if self.status is not SagaStatus.STARTED:
            already = " and already cancelled" if self.cancel_requested else ""
            raise NotCancellable(f"saga is {self.status.value}{already}; only a STARTED saga can be cancelled")
        self.cancel_requested = True
        return self._fail_step(f"cancelled: {reason}", True, now, policy)

    def retry(self, operator: str, now: datetime, policy: SagaPolicy) -> list[Command]:
        """Runs unconfirmed compensations (a COMPENSATION_FAILED saga goes back to
        COMPENSATING) and unconfirmed clean-ups again, with fresh attempts
        (docs/contract.md, "HTTP API", retry). Raises NothingToRetry."""
        reopen = [
            index
            for index, undo in enumerate(self.compensations)
            if undo.status is UndoStatus.UNCONFIRMED and (undo.cleanup or self.status is SagaStatus.COMPENSATION_FAILED)
        ]
        if not reopen:
            raise NothingToRetry(f"saga {self.id} has no unconfirmed compensation or clean-up")
        self._record(now, HistoryKind.OPERATOR, "retry", None, _detail(f"asked by {operator}"))
        for index in reopen:
            self.compensations[index] = replace(self.compensations[index], status=UndoStatus.PENDING, outcome=None)
        if self.status is SagaStatus.COMPENSATION_FAILED:
            self.error = self._failure_before_compensating()
            self.completed_at = None
            self._set_status(SagaStatus.COMPENSATING, now)
        if self._running() is None:
            return self._run_next_undo(now, policy)
        return []

    # -------------------------------------------------------------- undoing

    def _fail_step(self, reason: str, by_deadline: bool, now: datetime, policy: SagaPolicy) -> list[Command]:
        self.error = bounded(reason, MAX_ERROR_CHARS)
        for compensation in compensation_plan(self.current_step, by_deadline):
            resource_id = self._holds(UNDO_BY_COMPENSATION[compensation].undoes)
            if not any(u.compensation is compensation and u.resource_id == resource_id for u in self.compensations):
                self.compensations.append(Undo(compensation, resource_id))
        self.awaiting = None
        self._set_status(SagaStatus.COMPENSATING, now)
        return self._run_next_undo(now, policy)

    def _run_next_undo(self, now: datetime, policy: SagaPolicy) -> list[Command]:
        waiting = [
            (UNDO_ORDER.index(undo.compensation), index)
            for index, undo in enumerate(self.compensations)
            if undo.status is UndoStatus.PENDING
        ]
        if waiting and self.status is not SagaStatus.STARTED:
            _, index = min(waiting)
            undo = replace(self.compensations[index], status=UndoStatus.RUNNING)
            self.compensations[index] = undo
            return [self._send(undo.command_type, self._undo_payload(undo), now, policy)]
        self.awaiting = None
        if self.status is SagaStatus.COMPENSATING:
            self._finish_undoing(now)
        return []

    def _finish_undoing(self, now: datetime) -> None:
        left = [undo for undo in self.compensations if not undo.cleanup and undo.status is UndoStatus.UNCONFIRMED]
        self.completed_at = now
        if left:
            named = "; ".join(f"{undo.command_type} {undo.outcome} ({_named(undo)})" for undo in left)
            self.error = bounded(f"{self.error}; {named}", MAX_ERROR_CHARS)
            self._set_status(SagaStatus.COMPENSATION_FAILED, now)
        else:
            self._set_status(SagaStatus.CANCELLED if self.cancel_requested else SagaStatus.FAILED, now)

    def _undo_reply(self, spec: UndoSpec, event: Event, now: datetime, policy: SagaPolicy) -> list[Command] | None:
        """A compensation's confirmation or rejection; None when it answers nothing this saga runs."""
        named = _resource_id(event, spec.undoes)
        running = self._running()
        if running is not None and self.compensations[running].compensation is not spec.compensation:
            running = None
        if event.type == spec.action.success:
            target = None
            if named is not None:
                target = next(
                    (
                        index
                        for index, undo in enumerate(self.compensations)
                        if undo.compensation is spec.compensation and undo.resource_id == named
                    ),
                    None,
                )
            if (
                target is None
                and running is not None
                and (named is None or self.compensations[running].resource_id is None)
            ):
                target = running
            if target is None:
                # A confirmation after the compensation was given up still counts.
                given_up = [
                    index
                    for index, undo in enumerate(self.compensations)
                    if undo.compensation is spec.compensation
                    and undo.status in (UndoStatus.UNKNOWN, UndoStatus.UNCONFIRMED)
                    and (named is None or undo.resource_id is None)
                ]
                target = given_up[0] if len(given_up) == 1 else None
            if target is None or self.compensations[target].status is UndoStatus.CONFIRMED:
                return None
            undo = self.compensations[target]
            self._record(now, HistoryKind.EVENT, event.type, event.message_id, None)
            confirmed = replace(undo, status=UndoStatus.CONFIRMED, resource_id=undo.resource_id or named, outcome=None)
            self.compensations[target] = confirmed
            self._record(now, HistoryKind.COMPENSATION, undo.command_type, None, f"confirmed: {_named(confirmed)}")
            if target == running:
                self.awaiting = None
                return self._run_next_undo(now, policy)
            if self.status is SagaStatus.COMPENSATING and self._running() is None:
                return self._run_next_undo(now, policy)
            self.updated_at = now
            return []
        awaiting = self.awaiting
        if running is None or awaiting is None or not awaiting.sent:
            return None
        known = self.compensations[running].resource_id
        if named is not None and known is not None and named != known:
            return None
        why = failure_reason(event.payload) or "rejected"
        self._record(now, HistoryKind.EVENT, event.type, event.message_id, _detail(why))
        if awaiting.attempts >= policy.compensation_attempts:
            return self._give_up(running, why, now, policy)
        # The participant processed this message and said no: the retry is a new message.
        self.awaiting = replace(
            awaiting, message_id=new_message_id(), due_at=now + policy.backoff(awaiting.attempts), sent=False
        )
        self.updated_at = now
        return []

    def _give_up(self, index: int, why: str, now: datetime, policy: SagaPolicy) -> list[Command]:
        undo = self.compensations[index]
        attempts = self.awaiting.attempts if self.awaiting is not None else 0
        status = UndoStatus.UNCONFIRMED if undo.resource_id is not None else UndoStatus.UNKNOWN
        outcome = bounded(f"not confirmed after {attempts} attempts: {why}", MAX_ERROR_CHARS)
        given_up = replace(undo, status=status, outcome=outcome)
        self.compensations[index] = given_up
        self._record(
            now, HistoryKind.COMPENSATION, undo.command_type, None, _detail(f"{status}: {_named(given_up)} {outcome}")
        )
        self.awaiting = None
        return self._run_next_undo(now, policy)

    def _not_held(
        self, resource: Resource, resource_id: str, event: Event, now: datetime, policy: SagaPolicy
    ) -> list[Command]:
        """A success reply naming a resource the saga does not hold: it is undone
        (docs/contract.md, "No orphan resources")."""
        self._record(
            now, HistoryKind.EVENT, event.type, event.message_id, f"{resource.id_field} {resource_id} not held"
        )
        spec = UNDO[resource]
        if not self.status.is_final:
            for index, undo in enumerate(self.compensations):
                if undo.compensation is spec.compensation and undo.resource_id is None and undo.status in _LEARNABLE:
                    learned = replace(
                        undo,
                        resource_id=resource_id,
                        status=UndoStatus.PENDING if undo.status is UndoStatus.UNKNOWN else undo.status,
                    )
                    self.compensations[index] = learned
                    self._record(now, HistoryKind.COMPENSATION, undo.command_type, None, f"learned {_named(learned)}")
                    if learned.status is UndoStatus.RUNNING:
                        # The waiting compensation is sent again, now naming the resource.
                        return [self._send(learned.command_type, self._undo_payload(learned), now, policy)]
                    if self._running() is None:
                        return self._run_next_undo(now, policy)
                    self.updated_at = now
                    return []
        reason = bounded(
            f"{event.type} named {resource.id_field} {resource_id}, which saga {self.id} does not hold",
            MAX_ERROR_CHARS,
        )
        undo = Undo(spec.compensation, resource_id, cleanup=self.status.is_final, reason=reason)
        self.compensations.append(undo)
        self._record(now, HistoryKind.COMPENSATION, undo.command_type, None, f"to undo: {_named(undo)}")
        if self._running() is None and self.status is not SagaStatus.STARTED:
            return self._run_next_undo(now, policy)
        self.updated_at = now
        return []

    def _undo_payload(self, undo: Undo) -> JsonObject:
        reason = bounded(undo.reason or self.error or "undone", MAX_ERROR_CHARS)
        return undo.spec.payload(self, undo.resource_id, reason)

    # -------------------------------------------------------------- internal

    def _running(self) -> int | None:
        return next((i for i, undo in enumerate(self.compensations) if undo.status is UndoStatus.RUNNING), None)

    def _holds(self, resource: Resource) -> str | None:
        held: str | None = getattr(self, resource.id_field)  # order_id or payment_id
        return held

    def _held(self, resource: Resource) -> set[str]:
        spec = UNDO[resource]
        held = {undo.resource_id for undo in self.compensations if undo.compensation is spec.compensation}
        held.add(self._holds(resource))
        return {resource_id for resource_id in held if resource_id is not None}

    def _reached(self, step: Step) -> bool:
        return STEPS.index(step) <= STEPS.index(self.current_step)

    def _failure_before_compensating(self) -> str | None:
        for entry in reversed(self.history):
            if entry.kind is HistoryKind.STATUS and entry.type == SagaStatus.COMPENSATING.value:
                return entry.detail
        return self.error

    def _why_not_fitting(self, event: Event) -> str:
        if self.awaiting is None:
            return "saga is not waiting for a reply"
        spec = STEP[self.current_step]
        if self.status is SagaStatus.STARTED:
            return f"waiting for {spec.action.success} or {' or '.join(spec.action.failures)}"
        running = self._running()
        if running is not None:
            undo = self.compensations[running]
            action = undo.spec.action
            named = _resource_id(event, undo.spec.undoes)
            if event.type in action.replies and None not in (named, undo.resource_id) and named != undo.resource_id:
                resource = undo.spec.undoes.value
                return f"{event.type} names {resource} {named}; the {undo.command_type} running undoes {_named(undo)}"
            return f"waiting for {action.success} or {' or '.join(action.failures)}"
        return "saga is not waiting for this reply"

    def _send(self, command_type: str, payload: JsonObject, now: datetime, policy: SagaPolicy) -> Command:
        message_id = new_message_id()
        self.awaiting = Awaiting(command_type, message_id, payload, 1, now + policy.step_deadline, queued_at=now)
        self._record(now, HistoryKind.COMMAND, command_type, message_id, None)
        return Command(command_type, self.id, payload, message_id, now)

    def _resend(self, awaiting: Awaiting, now: datetime, wait: timedelta) -> Command:
        self.awaiting = replace(awaiting, attempts=awaiting.attempts + 1, due_at=now + wait, sent=True, queued_at=now)
        self._record(
            now, HistoryKind.COMMAND, awaiting.command_type, awaiting.message_id, f"attempt {awaiting.attempts + 1}"
        )
        return Command(awaiting.command_type, self.id, awaiting.payload, awaiting.message_id, now)

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


_OPEN = (UndoStatus.PENDING, UndoStatus.RUNNING)
_LEARNABLE = (UndoStatus.PENDING, UndoStatus.RUNNING, UndoStatus.UNKNOWN)


def _detail(text: str) -> str:
    return bounded(text, MAX_HISTORY_DETAIL_CHARS)


def _shown(value: object) -> str:
    """A payload value in a saga's error, as the JSON it came as (`null`, `"PENDING"`), not as
    Python writes it; on one line and short."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{bounded(one_line(value), 100)}"'
    if isinstance(value, int | float):
        return bounded(str(value), 100)
    return "an object" if isinstance(value, dict) else "an array" if isinstance(value, list) else "a value"


def _named(undo: Undo) -> str:
    resource = undo.spec.undoes
    return f"{resource.value} {undo.resource_id if undo.resource_id is not None else '(id never reported)'}"


def named_resource(event: Event) -> ResourceRef | None:
    """The resource an event names by id (`EVENT_RESOURCE`), if it names one."""
    resource = EVENT_RESOURCE.get(event.type)
    if resource is None:
        return None
    resource_id = _resource_id(event, resource)
    return ResourceRef(resource, resource_id) if resource_id is not None else None


def _resource_id(event: Event, resource: Resource) -> str | None:
    """The resource id an event names: a string, or an integer kept as its decimal text."""
    value = event.payload.get(resource.id_field)
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value)
    return value if isinstance(value, str) and value else None
