"""The saga's use cases: start a saga, apply an event, act on passed deadlines, cancel.

Each use case is one unit of work: the saga, the commands it decided to send (into
the outbox) and the id of the message it consumed (into the inbox) are written in
one transaction, or not at all.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import partial

from saga.domain.messages import Command, Event, JsonObject
from saga.domain.money import InvalidOrder, OrderLimits, check_order
from saga.domain.policy import SagaPolicy
from saga.domain.saga import CreateOrderSaga, HistoryKind, SagaStatus
from saga.ports.clock import Clock
from saga.ports.persistence import (
    CommitOutcomeUnknown,
    ConcurrencyConflict,
    DuplicateSaga,
    IdempotencyRecord,
    PageCursor,
    PersistenceError,
    SagaPage,
    StorageUnavailable,
    UnitOfWork,
    UnitOfWorkFactory,
)
from saga.service_layer.group_commit import GroupCommit, ItemFailed
from saga.service_layer.holdings import BatchHoldings
from saga.service_layer.log_context import bind, log_context
from saga.service_layer.metrics import Metrics, SagaBefore
from saga.service_layer.relay_queue import RelayQueue
from saga.service_layer.tracing import Tracing, incoming_traceparent

log = logging.getLogger(__name__)

CONFLICT_RETRIES = 5
IDEMPOTENCY_KEY_TTL = timedelta(hours=24)
"""How long an order's Idempotency-Key answers with its first saga (docs/contract.md, "HTTP API")."""


class IdempotencyKeyReused(Exception):
    """An Idempotency-Key came back with a request body other than its first one's (a 422)."""

    def __init__(self, key: str) -> None:
        super().__init__(f"Idempotency-Key {key!r} was used with another request body")


class EventOutcome(StrEnum):
    APPLIED = "applied"
    IGNORED = "ignored"
    """The event did not fit the saga's state; recorded in its history, nothing changed."""
    DUPLICATE = "duplicate"
    """Its message_id was processed before."""
    UNKNOWN_SAGA = "unknown_saga"


def _holds_retry_at(saga: CreateOrderSaga, at: datetime) -> bool:
    return any(entry.kind is HistoryKind.OPERATOR and entry.at == at for entry in saga.history)


@dataclass(frozen=True)
class _NewSaga:
    """A saga to start, its first command and its idempotency key (key, request digest), if any."""

    saga: CreateOrderSaga
    commands: list[Command]
    key: tuple[str, str] | None


def _undoing_began(status_before: SagaStatus | None, saga: CreateOrderSaga) -> bool:
    """The saga stopped moving forward: a step command still unsent must never reach its
    participant after the compensation meant to undo it, so it is withdrawn."""
    return status_before is SagaStatus.STARTED and saga.status is not SagaStatus.STARTED


class CommitUnanswered(StorageUnavailable):
    """The commit itself failed: the work may have been written (the connection broke after COMMIT was sent)."""


def _commit(uow: UnitOfWork) -> None:
    try:
        uow.commit()
    except StorageUnavailable as error:
        raise CommitUnanswered(str(error)) from error


class SagaOrchestrator:
    OUTCOME_PROBE_PAUSES: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0)
    """Seconds before each read that finds out whether an ambiguous commit wrote its saga."""

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        clock: Clock,
        policy: SagaPolicy,
        metrics: Metrics,
        limits: OrderLimits = OrderLimits(),
        dispatch: RelayQueue | None = None,
        dispatch_hold: timedelta = timedelta(seconds=5),
        tracing: Tracing | None = None,
    ) -> None:
        self._tracing = tracing or Tracing()
        """Spans of the use cases (start, apply event, deadline), one trace per saga."""
        self._uow_factory = uow_factory
        self._clock = clock
        self._policy = policy
        self._metrics = metrics
        self._limits = limits
        self._dispatch = dispatch
        """Where committed commands go for this process's relay to send at once; without
        it they wait in the outbox for a relay's next poll."""
        self._dispatch_hold = dispatch_hold
        self._starts: GroupCommit[_NewSaga, str | None] = GroupCommit(
            self._write_sagas, split_on=(DuplicateSaga, ConcurrencyConflict)
        )
        """New sagas started at the same time are written in one transaction (group commit)."""

    def start(self, customer_id: str, order_details: JsonObject) -> CreateOrderSaga:
        """Starts a saga for a new order. Raises InvalidOrder when the order breaks an
        intake limit (docs/contract.md, "The saga": order total and intake limits),
        StorageUnavailable when nothing was written, CommitOutcomeUnknown when that cannot be learned."""
        saga, commands = self._new_saga(customer_id, order_details)
        self._write_new_saga(saga, commands)
        return saga

    def _new_saga(self, customer_id: str, order_details: JsonObject) -> tuple[CreateOrderSaga, list[Command]]:
        """The new saga and its first command, unsaved. Raises InvalidOrder."""
        amount_cents = check_order(customer_id, order_details, self._limits)
        currency = order_details.get("currency", self._policy.default_currency)
        if not isinstance(currency, str) or len(currency) != 3 or not (currency.isascii() and currency.isalpha()):
            raise InvalidOrder("order_details.currency must be a three-letter code")
        return CreateOrderSaga.start(
            str(uuid.uuid4()),
            customer_id,
            order_details,
            amount_cents,
            currency.upper(),
            self._clock.now(),
            self._policy,
        )

    def start_once(self, customer_id: str, order_details: JsonObject, key: str, request_digest: str) -> str:
        """Starts a saga once per idempotency key (docs/contract.md, "HTTP API", `Idempotency-Key`);
        returns its id: the new saga's, or the one the key's first request made.

        Raises InvalidOrder, IdempotencyKeyReused (the key came with another body),
        StorageUnavailable (nothing was written) or CommitOutcomeUnknown.
        """
        saga, commands = self._new_saga(customer_id, order_details)
        for _ in range(CONFLICT_RETRIES):
            try:
                return self._write_new_saga(saga, commands, (key, request_digest)) or saga.id
            except ConcurrencyConflict:
                # Another request with this key committed first (or was committing): read it.
                self._metrics.count("concurrency_conflicts")
        raise ConcurrencyConflict(f"idempotency key {key!r} kept changing hands")

    def _write_new_saga(
        self, saga: CreateOrderSaga, commands: list[Command], key: tuple[str, str] | None = None
    ) -> str | None:
        """Writes a new saga with the others being started meanwhile (one transaction for
        them all, `_write_sagas`), then counts, logs and hands over its first command.
        Returns the saga id a repeated key already stands for, None when it wrote `saga`.
        Raises what `_write_sagas` reports for this saga."""
        with self._tracing.use_case("saga.start", saga.id, commands[0].message_id):
            found = self._starts.submit(_NewSaga(saga, commands, key))
            if found is not None:
                self._metrics.count("idempotent_replays")
                return found
            self._metrics.count("sagas_started")
            self._queued(commands)
            with log_context(saga_id=saga.id, step=saga.current_step.value, message_id=commands[0].message_id):
                log.info("saga %s started for customer %s, %d cents", saga.id, saga.customer_id, saga.amount_cents)
            return None

    def _write_sagas(self, batch: Sequence[_NewSaga]) -> list[str | ItemFailed | None]:
        """Writes new sagas, their first commands and idempotency keys in one transaction;
        one outcome per saga: None (written), the saga id its key already stands for, or
        ItemFailed (IdempotencyKeyReused, or after an ambiguous commit StorageUnavailable or
        CommitOutcomeUnknown, as `_find_out_written` learns; docs/contract.md, "HTTP API": a
        503 means nothing was written).

        Raises, for the whole batch, StorageUnavailable when nothing was written, and
        DuplicateSaga or ConcurrencyConflict when one saga broke the transaction (a key
        another transaction claimed, an id taken; which one is not known, and on PostgreSQL
        the transaction is lost): the group commit then writes each saga alone."""
        self._metrics.count("start_transactions")
        outcomes: list[str | ItemFailed | None] = []
        claims: dict[str, IdempotencyRecord] = {}
        """The idempotency keys this batch claims, by key."""
        unanswered: CommitUnanswered | None = None
        expired_before = min(new.saga.created_at for new in batch) - IDEMPOTENCY_KEY_TTL
        with self._uow_factory() as uow:
            keys = [new.key[0] for new in batch if new.key is not None]
            found = uow.idempotency_keys.get_many(keys, expired_before) if keys else {}
            for new in batch:
                try:
                    outcomes.append(self._claim_key(new, found, claims))
                except IdempotencyKeyReused as error:
                    # Nothing of this saga is written, and the transaction goes on for the others.
                    outcomes.append(ItemFailed(error))
            added = [new for new, outcome in zip(batch, outcomes, strict=True) if outcome is None]
            if not added:
                return outcomes  # replays and refusals only: nothing to commit
            uow.idempotency_keys.add_many(list(claims.values()), expired_before)
            uow.sagas.add_many([new.saga for new in added])
            commands = [command for new in added for command in new.commands]
            uow.outbox.add(commands, self._hold_until(max(new.saga.updated_at for new in added)))
            try:
                _commit(uow)
            except CommitUnanswered as error:
                unanswered = error
        if unanswered is None:
            return outcomes
        # The COMMIT may have reached the database before the connection broke.
        written = [new.saga.id for new in added]
        learned = self._find_out_written(written, unanswered)
        claimed = {key: record.saga_id for key, record in claims.items()}
        return [self._learned(new, outcome, claimed, learned) for new, outcome in zip(batch, outcomes, strict=True)]

    @staticmethod
    def _claim_key(
        new: _NewSaga, found: dict[str, IdempotencyRecord], claims: dict[str, IdempotencyRecord]
    ) -> str | None:
        """Whether a new saga is to be written, by its idempotency key (`(key, request digest)`),
        if any: returns the saga id the key already stands for (a live record of it in `found`,
        or a claim of an earlier saga of the batch in `claims`), None when the saga is to be
        written (its key, if any, then joins `claims`). Raises IdempotencyKeyReused when the
        key stands for another request body."""
        saga, key = new.saga, new.key
        if key is None:
            return None
        first = claims.get(key[0])
        if first is None:
            record = found.get(key[0])
            if record is not None and record.created_at > saga.created_at - IDEMPOTENCY_KEY_TTL:
                first = record
        if first is not None:
            if first.request_digest != key[1]:
                raise IdempotencyKeyReused(key[0])
            return first.saga_id
        claims[key[0]] = IdempotencyRecord(key[0], key[1], saga.id, saga.created_at)
        return None

    @staticmethod
    def _learned(
        new: _NewSaga,
        outcome: str | ItemFailed | None,
        keys: dict[str, str],
        learned: dict[str, PersistenceError | None],
    ) -> str | ItemFailed | None:
        """A saga's outcome once reading back after an ambiguous commit told which of the
        batch's sagas were written (`learned`: saga id, None when written; `keys`: the
        saga id per idempotency key the batch claimed)."""
        if outcome is None:
            error = learned[new.saga.id]
            return outcome if error is None else ItemFailed(error)
        # A request answered by its key's first request, in this very batch, shares that one's fate.
        if isinstance(outcome, str):
            first: str | None = outcome
        elif isinstance(outcome.error, IdempotencyKeyReused) and new.key is not None:
            first = keys.get(new.key[0])
        else:
            return outcome
        error = learned.get(first) if first is not None else None
        if error is None:
            return outcome
        if isinstance(outcome, ItemFailed):  # this request would have written nothing, and nothing was
            return ItemFailed(StorageUnavailable(str(error)))
        return ItemFailed(error)

    def _find_out_written(
        self, saga_ids: Sequence[str], error: StorageUnavailable
    ) -> dict[str, PersistenceError | None]:
        """Whether each of the sagas `saga_ids`, whose commit lost its answer, is in the database:
        None when it is; `error` (StorageUnavailable: nothing was written) when two reads some
        time apart do not find it (the transaction was lost with its connection); and
        CommitOutcomeUnknown when the database does not answer the reads.
        """
        self._metrics.count("ambiguous_commits")
        learned: dict[str, PersistenceError | None] = {}
        absent: dict[str, int] = dict.fromkeys(saga_ids, 0)
        for pause in self.OUTCOME_PROBE_PAUSES:
            if not absent:
                break
            time.sleep(pause)
            try:
                with self._uow_factory(read_only=True) as uow:
                    found = {saga_id: uow.sagas.get(saga_id) is not None for saga_id in absent}
            except PersistenceError:
                continue
            for saga_id, written in found.items():
                if written:
                    with log_context(saga_id=saga_id):
                        log.warning("saga %s: its commit lost its answer (%s) but it was written", saga_id, error)
                    learned[saga_id] = None
                    del absent[saga_id]
                elif absent[saga_id] == 1:
                    learned[saga_id] = error
                    del absent[saga_id]
                else:
                    absent[saga_id] = 1
        for saga_id in absent:
            with log_context(saga_id=saga_id):
                log.error("saga %s: the outcome of its commit is unknown (%s)", saga_id, error)
            unknown = CommitOutcomeUnknown(saga_id, str(error))
            unknown.__cause__ = error
            learned[saga_id] = unknown
        return learned

    def apply_event(self, event: Event, traceparent: str | None = None) -> EventOutcome:
        """Applies a participant's event to its saga, at most once per (saga, message_id):
        a batch of one (`apply_events`). Raises StorageUnavailable when nothing was written,
        ConcurrencyConflict when the saga kept changing under it."""
        return self.apply_events([event], [traceparent])[0]

    def apply_events(
        self, events: Sequence[Event], traceparents: Sequence[str | None] | None = None
    ) -> list[EventOutcome]:
        """Applies a batch of participants' events in one unit of work; returns each one's
        outcome, in the order given.

        The effect is that of applying them one at a time in that order (each saga's
        events in the order they came, each message_id at most once per saga), with one
        commit for the batch: group commit, as a consumer poll or a burst of HTTP
        replies brings them. `traceparents`, parallel to `events`, are the ones each
        arrived with (a Kafka header), for its span.

        Raises StorageUnavailable when nothing was written (retry the batch; its events
        that were written after all are then duplicates), and whatever applying an event
        raised unexpectedly: nothing of the batch is written then, and the caller may
        apply its events one at a time to find the one at fault.
        """
        if not events:
            return []
        for _ in range(CONFLICT_RETRIES):
            try:
                return self._apply_batch(events, traceparents)
            except ConcurrencyConflict:
                # Another process moved one of these sagas (a reply may come on any partition).
                self._metrics.count("concurrency_conflicts")
        if len(events) == 1:
            raise ConcurrencyConflict(f"saga {events[0].saga_id} kept changing while applying {events[0].type}")
        # One saga kept changing: the others need not wait for it.
        traced = traceparents or [None] * len(events)
        return [self.apply_event(event, traceparent) for event, traceparent in zip(events, traced, strict=True)]

    def _apply_batch(self, events: Sequence[Event], traceparents: Sequence[str | None] | None) -> list[EventOutcome]:
        now = self._clock.now()
        outcomes: list[EventOutcome] = []
        changes: list[tuple[CreateOrderSaga, SagaBefore, SagaBefore, Event]] = []
        steps: list[str | None] = []
        """The step each event's saga was at when it came (its log lines say so)."""
        loaded_status: dict[str, SagaStatus] = {}
        commands: dict[str, list[Command]] = {}
        """The commands each saga decided in this batch, not yet written."""
        with self._uow_factory() as uow:
            # Without their history: applying an event appends to it and never reads it.
            sagas = uow.sagas.get_many([event.saga_id for event in events], history=False)
            holdings = BatchHoldings(uow.sagas, events, sagas)
            fresh = uow.inbox.record_many(
                [(event.saga_id, event.message_id) for event in events if event.saga_id in sagas and event.message_id],
                now,
            )
            for index, event in enumerate(events):
                saga = sagas.get(event.saga_id)
                steps.append(None if saga is None else saga.current_step.value)
                if saga is None:
                    outcomes.append(EventOutcome.UNKNOWN_SAGA)
                    continue
                loaded_status.setdefault(saga.id, saga.status)
                with (
                    # Without one of its own, the event keeps the one it was handed in with.
                    incoming_traceparent(traceparents[index])
                    if traceparents and traceparents[index]
                    else nullcontext(),
                    log_context(saga_id=event.saga_id, message_id=event.message_id, step=saga.current_step.value),
                    self._tracing.use_case("saga.apply_event", event.saga_id, event.message_id),
                ):
                    if event.message_id is not None:
                        key = (saga.id, event.message_id)
                        if key not in fresh:
                            saga.note_duplicate(event, now)
                            outcomes.append(EventOutcome.DUPLICATE)
                            continue
                        fresh.discard(key)  # a second copy in this batch is a duplicate
                    ignored_before, status_before, before = saga.ignored_events, saga.status, SagaBefore.of(saga)
                    decided = saga.handle(event, now, self._policy, holdings.elsewhere(saga, event))
                    holdings.applied(saga, event)
                    if _undoing_began(status_before, saga):
                        # Undoing begins: what this batch decided before must not go out either.
                        commands[saga.id] = []
                    commands.setdefault(saga.id, []).extend(decided)
                    if saga.ignored_events > ignored_before:
                        outcomes.append(EventOutcome.IGNORED)
                    else:
                        outcomes.append(EventOutcome.APPLIED)
                        changes.append((saga, before, SagaBefore.of(saga), event))
            touched = [sagas[saga_id] for saga_id in loaded_status]
            withdrawn = {
                saga.id: uow.outbox.discard_unsent(saga.id, now)
                for saga in touched
                if _undoing_began(loaded_status[saga.id], saga)
            }
            uow.sagas.save_many(touched)
            queued = [command for saga in touched for command in commands.get(saga.id, [])]
            uow.outbox.add(queued, self._hold_until(now))
            _commit(uow)
        # Said once it is true: a transaction retried after a conflict would say it again.
        for event, outcome, step in zip(events, outcomes, steps, strict=True):
            self._metrics.event(event.type, outcome.value)
            if outcome is not EventOutcome.APPLIED:
                with log_context(saga_id=event.saga_id, message_id=event.message_id, step=step):
                    log.info("event %s for saga %s: %s", event.type, event.saga_id, outcome.value)
        for saga, before, after, event in changes:
            self._metrics.saga_changed(saga, before, now, reply=event, after=after)
            if log.isEnabledFor(logging.DEBUG):
                with log_context(saga_id=saga.id, message_id=event.message_id, step=saga.current_step.value):
                    log.debug("saga %s: %s applied; %s at %s", saga.id, event.type, after.status, saga.current_step)
        self._queued(queued)
        for saga in touched:
            with log_context(saga_id=saga.id, step=saga.current_step.value):
                if withdrawn.get(saga.id):
                    log.info("saga %s: %d unsent command(s) withdrawn", saga.id, withdrawn[saga.id])
                self._log_status(saga, loaded_status[saga.id])
        return outcomes

    def sweep_deadlines(self, limit: int = 500, events_read_until: datetime | None = None) -> int:
        """Acts on every saga whose deadline has passed; returns how many were acted on.

        With `events_read_until`, only deadlines that passed before it count: a reply may
        still wait unread for those after it, and waiting is not the participant's silence.
        """
        now = self._clock.now()
        cutoff = now if events_read_until is None else min(now, events_read_until)
        with self._uow_factory(read_only=True) as uow:
            due = uow.sagas.due(cutoff, limit)
        acted = 0
        for saga_id in due:
            try:
                with log_context(saga_id=saga_id), self._tracing.use_case("saga.deadline", saga_id):
                    acted += self._on_deadline(saga_id, cutoff)
            except ConcurrencyConflict:
                # An event moved the saga meanwhile; the next sweep sees its new deadline.
                self._metrics.count("concurrency_conflicts")
        return acted

    def _on_deadline(self, saga_id: str, cutoff: datetime) -> int:
        now = self._clock.now()
        with self._uow_factory() as uow:
            saga = uow.sagas.get(saga_id)
            if saga is None or saga.awaiting is None or saga.awaiting.due_at > min(now, cutoff):
                return 0
            bind(step=saga.current_step.value, message_id=saga.awaiting.message_id)
            if saga.awaiting.sent and uow.outbox.awaiting_delivery(saga.awaiting.message_id):
                saga.postpone_deadline(now, self._policy)
                self._store(uow, saga, [])
                self._metrics.count("deadlines_postponed")
                log.info("saga %s: %s not delivered yet; its deadline waits", saga.id, saga.awaiting.command_type)
                return 1
            status_before, before = saga.status, SagaBefore.of(saga)
            commands = saga.on_deadline(now, self._policy)
            self._store(uow, saga, commands, status_before)
        self._metrics.saga_changed(saga, before, now, deadline=True)
        self._queued(commands)
        self._log_status(saga, status_before)
        return 1

    def cancel(self, saga_id: str, reason: str) -> CreateOrderSaga | None:
        """Undoes a saga still moving forward; it ends CANCELLED. None if the saga is unknown;
        raises NotCancellable, changing nothing, when it is past STARTED (docs/contract.md,
        "Cancel and retry"), also when a cancel already moved it on."""
        for _ in range(CONFLICT_RETRIES):
            now = self._clock.now()
            try:
                with self._uow_factory() as uow:
                    saga = uow.sagas.get(saga_id)
                    if saga is None:
                        return None
                    status_before, before = saga.status, SagaBefore.of(saga)
                    commands = saga.cancel(reason, now, self._policy)
                    if saga.status is not status_before:
                        self._store(uow, saga, commands, status_before)
            except ConcurrencyConflict:
                continue
            except CommitUnanswered as error:
                # The commit may have been written although its answer was lost: if the saga
                # is cancelling, this request (or an earlier one) did it, and saying 503 would lie.
                saga = self._written_after_all(saga_id, error, lambda stored: stored.cancel_requested)
                commands = []
            if saga is not None and saga.status is not status_before:
                self._metrics.saga_changed(saga, before, now)
            self._queued(commands)
            return saga
        raise ConcurrencyConflict(f"saga {saga_id} kept changing while cancelling")

    def retry(self, saga_id: str, operator: str) -> CreateOrderSaga | None:
        """An operator's retry (docs/contract.md, "HTTP API"): runs a COMPENSATION_FAILED saga's
        unconfirmed compensations, and a terminal saga's unconfirmed clean-ups, again with fresh
        attempts. None if the saga is unknown; raises NothingToRetry when nothing is unconfirmed."""
        for _ in range(CONFLICT_RETRIES):
            now = self._clock.now()
            try:
                with self._uow_factory() as uow:
                    saga = uow.sagas.get(saga_id)
                    if saga is None:
                        return None
                    status_before, before = saga.status, SagaBefore.of(saga)
                    commands = saga.retry(operator, now, self._policy)
                    self._store(uow, saga, commands, status_before)
            except ConcurrencyConflict:
                self._metrics.count("concurrency_conflicts")
                continue
            except CommitUnanswered as error:
                # Written after all when the saga's history holds this very retry.
                saga = self._written_after_all(saga_id, error, partial(_holds_retry_at, at=now))
                commands = []
            self._metrics.count("operator_retries")
            self._metrics.saga_changed(saga, before, now)
            self._queued(commands)
            log.info("saga %s: retry asked by %s; %d command(s) sent again", saga.id, operator, len(commands))
            return saga
        raise ConcurrencyConflict(f"saga {saga_id} kept changing while retrying")

    def _written_after_all(
        self, saga_id: str, error: StorageUnavailable, written: Callable[[CreateOrderSaga], bool]
    ) -> CreateOrderSaga:
        """After a commit whose answer was lost: the saga, when reading it back shows the work
        `written`; raises `error` when it was not, CommitOutcomeUnknown when that cannot be learned."""
        for pause in self.OUTCOME_PROBE_PAUSES:
            time.sleep(pause)
            try:
                saga = self.get(saga_id)
            except PersistenceError:
                continue
            if saga is not None and written(saga):
                return saga
            raise error
        raise CommitOutcomeUnknown(saga_id, str(error)) from error

    def get(self, saga_id: str) -> CreateOrderSaga | None:
        with self._uow_factory(read_only=True) as uow:
            return uow.sagas.get(saga_id)

    def search(self, term: str, limit: int) -> list[CreateOrderSaga]:
        """Up to `limit` sagas, newest first, whose id, customer_id or order_id is exactly `term`."""
        with self._uow_factory(read_only=True) as uow:
            return uow.sagas.search(term, limit)

    def page(
        self, status: SagaStatus | None, limit: int, after: PageCursor | None, unconfirmed_cleanup: bool = False
    ) -> SagaPage:
        with self._uow_factory(read_only=True) as uow:
            return uow.sagas.page(status, limit, after, unconfirmed_cleanup)

    def _store(
        self, uow: UnitOfWork, saga: CreateOrderSaga, commands: list[Command], status_before: SagaStatus | None = None
    ) -> None:
        discarded = 0
        if _undoing_began(status_before, saga):
            discarded = uow.outbox.discard_unsent(saga.id, saga.updated_at)
        uow.sagas.save(saga)
        uow.outbox.add(commands, self._hold_until(saga.updated_at))
        _commit(uow)
        # Said once it is true: a transaction retried after a conflict would say it again.
        if discarded:
            log.info("saga %s: %d unsent command(s) withdrawn", saga.id, discarded)

    def _hold_until(self, now: datetime) -> datetime | None:
        return now + self._dispatch_hold if self._dispatch is not None else None

    def _queued(self, commands: list[Command]) -> None:
        if commands:
            self._metrics.count("commands_queued", len(commands))
            if self._dispatch is not None:
                self._dispatch.put(commands)

    def _log_status(self, saga: CreateOrderSaga, status_before: SagaStatus) -> None:
        """Says once that a saga ended; a clean-up on a terminal saga changes no status."""
        if saga.status.is_final and saga.status is not status_before:
            log.info("saga %s ended %s%s", saga.id, saga.status, f": {saga.error}" if saga.error else "")
