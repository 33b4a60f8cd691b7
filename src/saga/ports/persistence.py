"""The persistence port: sagas, their outbox and the inbox, bound by one unit of work.

Every adapter raises the errors below and only these, so use cases never see a
driver exception.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Protocol

from saga.domain.messages import Command
from saga.domain.saga import CreateOrderSaga, ResourceRef, SagaStatus, Undo


class PersistenceError(Exception):
    """Base of the persistence port's errors."""


class StorageUnavailable(PersistenceError):
    """The database cannot be reached or refused the work; nothing was written."""


class ConcurrencyConflict(PersistenceError):
    """The saga changed since it was read (its version moved); re-read and retry."""


class DuplicateSaga(PersistenceError):
    """A saga with this id already exists."""


class CommitOutcomeUnknown(PersistenceError):
    """The commit was sent and its answer never came, and asking afterwards got no answer
    either: the work may or may not be durable (docs/contract.md, "HTTP API": the 504)."""

    def __init__(self, saga_id: str, detail: str) -> None:
        super().__init__(f"the outcome of writing saga {saga_id} is unknown: {detail}")
        self.saga_id = saga_id


@dataclass(frozen=True)
class PageCursor:
    """Where the next page of a newest-first listing starts (keyset, not offset)."""

    created_at: datetime
    saga_id: str


@dataclass(frozen=True)
class SagaPage:
    sagas: list[CreateOrderSaga]
    next_cursor: PageCursor | None


@dataclass(frozen=True)
class SagaResources:
    """What a saga holds and undoes, without its history: what `saga audit` reads."""

    id: str
    status: SagaStatus
    order_id: str | None
    payment_id: str | None
    compensations: tuple[Undo, ...]
    created_at: datetime

    @classmethod
    def of(cls, saga: CreateOrderSaga) -> SagaResources:
        return cls(saga.id, saga.status, saga.order_id, saga.payment_id, tuple(saga.compensations), saga.created_at)


@dataclass(frozen=True)
class ResourcesPage:
    sagas: list[SagaResources]
    next_cursor: PageCursor | None


class SagaRepository(ABC):
    @abstractmethod
    def add(self, saga: CreateOrderSaga) -> None:
        """Stores a new saga. Raises DuplicateSaga if its id is taken (at commit at the latest)."""

    def add_many(self, sagas: Sequence[CreateOrderSaga]) -> None:
        """`add` for each saga; a store may write them in one statement per table. Raises
        DuplicateSaga if any one's id is taken (at commit at the latest), not saying which
        when they were written together."""
        for saga in sagas:
            self.add(saga)

    @abstractmethod
    def get(self, saga_id: str) -> CreateOrderSaga | None:
        """The saga as last committed, or None."""

    def get_many(self, saga_ids: Sequence[str], history: bool = True) -> dict[str, CreateOrderSaga]:
        """The sagas with these ids as last committed, by id; unknown ids are left out.
        A store may read them all in one statement; by default it reads one at a time.

        With `history=False` a store may leave each saga's history out (an empty list):
        what applying events needs, which only appends to it. `save` in this unit of
        work then appends what the history gained; a saga read so must not be saved by
        another unit of work."""
        found: dict[str, CreateOrderSaga] = {}
        for saga_id in dict.fromkeys(saga_ids):
            saga = self.get(saga_id)
            if saga is not None:
                found[saga_id] = saga
        return found

    @abstractmethod
    def save(self, saga: CreateOrderSaga) -> None:
        """Stores a changed saga and bumps its version.

        Raises ConcurrencyConflict if the stored version is not the one read.
        """

    def save_many(self, sagas: Sequence[CreateOrderSaga]) -> None:
        """`save` for each saga; a store may write their history in one statement.
        Raises ConcurrencyConflict if any one's stored version is not the one read."""
        for saga in sagas:
            self.save(saga)

    @abstractmethod
    def holders(self, resources: Collection[ResourceRef]) -> dict[ResourceRef, str]:
        """Which saga holds each of `resources`, as committed (and as this unit of work wrote):
        the id of one saga holding it, by resource; resources no saga holds are left out.
        A saga holds its `order_id` and `payment_id` and every resource its compensations
        and clean-ups name (`CreateOrderSaga.held_resources`; docs/contract.md, "No orphan
        resources"). When two sagas hold one resource, either may be named.

        A unit of work that asks, then makes a saga hold one of `resources`, is never
        interleaved with another one asking about that resource: the other's answer names
        it once this one committed. A store may wait for that (SQLite and memory queue
        every writer; PostgreSQL locks each resource asked about until the commit), so ask
        before the unit of work writes anything."""

    @abstractmethod
    def page(
        self, status: SagaStatus | None, limit: int, after: PageCursor | None, unconfirmed_cleanup: bool = False
    ) -> SagaPage:
        """Sagas newest first (created_at, then id), optionally of one status, and optionally
        only those that left a clean-up unconfirmed (docs/contract.md, "No orphan resources").
        Raises ValueError when `limit` is below 1."""

    @abstractmethod
    def due(self, now: datetime, limit: int) -> list[str]:
        """Ids of sagas whose deadline (`due_at`) has passed, earliest first."""

    @abstractmethod
    def count_by_status(self) -> dict[SagaStatus, int]:
        """How many sagas are in each status."""

    @abstractmethod
    def search(self, term: str, limit: int) -> list[CreateOrderSaga]:
        """Up to `limit` sagas, newest first, whose id, customer_id or order_id is exactly `term`."""

    def resources_page(self, limit: int, after: PageCursor | None) -> ResourcesPage:
        """`page(None, limit, after)` reduced to what each saga holds and undoes (the audit's
        read, over every saga). A store may read less than whole sagas; by default it reads them."""
        page = self.page(None, limit, after)
        return ResourcesPage([SagaResources.of(saga) for saga in page.sagas], page.next_cursor)


@dataclass(frozen=True)
class OutboxEntry:
    """A command in the outbox, as a relay claimed it: `id` is the entry's, `attempts` the
    failed sends so far."""

    id: int
    command: Command
    attempts: int


@dataclass(frozen=True)
class RetryLater:
    """How a relay puts back an entry it could not deliver: due again `at`, after `error`."""

    entry_id: int
    at: datetime
    error: str


class Outbox(ABC):
    """Commands written with their saga's change, until a relay hands them to the transport.

    A relay works in one way: it claims entries (those that are due, or those whose
    message_ids its own process just committed), which records them as sent in its
    unit of work; sends them inside that same unit of work; puts back, before it
    commits, those the transport did not take. A relay that dies before its commit
    leaves its entries unsent: they are sent again. While a relay holds its claim, a
    saga withdrawing its commands (`discard_unsent`) waits for it, so a compensation
    never leaves before the command it undoes.
    """

    @abstractmethod
    def add(self, commands: Sequence[Command], hold_until: datetime | None = None) -> None:
        """Queues commands; they become visible to relays when the unit of work commits.

        With `hold_until`, claiming by due time leaves them alone until then: the process
        that wrote them claims them by message_id right after the commit.
        """

    @abstractmethod
    def claim_due(self, now: datetime, limit: int) -> list[OutboxEntry]:
        """Takes up to `limit` unsent entries that are due at `now`, oldest first (by due
        time, then as added), and records them as sent at `now` in this unit of work.

        Entries another unit of work holds are skipped, so concurrent relays take
        disjoint batches; the claimed ones are held until this unit of work ends.
        """

    @abstractmethod
    def claim_by_message_ids(self, message_ids: Sequence[str], now: datetime) -> list[OutboxEntry]:
        """Takes the unsent entries with these message_ids, held or not, in the order they
        were added, and records them as sent at `now` in this unit of work.

        An entry already sent, withdrawn, or held by another unit of work (another relay
        sending it) is left out, so a command is never handed over twice or after its
        saga moved on. Unknown ids are ignored.
        """

    @abstractmethod
    def retry(self, later: Sequence[RetryLater]) -> None:
        """Puts back entries this unit of work claimed and could not send: unsent again,
        due at each one's `at` (ending any hold), with one more attempt counted and its
        error kept."""

    @abstractmethod
    def awaiting_delivery(self, message_id: str) -> bool:
        """True while a command with this message_id waits unsent: no participant has it yet."""

    @abstractmethod
    def discard_unsent(self, saga_id: str, now: datetime) -> int:
        """Withdraws the saga's unsent commands (it moved on; a late copy would do harm); returns how many.

        An entry a relay holds is waited for: what it sent stays sent, what it put back is withdrawn."""

    @abstractmethod
    def pending_count(self) -> int:
        """Entries not yet sent."""

    @abstractmethod
    def oldest_pending_at(self) -> datetime | None:
        """When the oldest entry not yet sent was written (its command's timestamp); None when none waits."""

    @abstractmethod
    def purge_sent(self, sent_before: datetime, limit: int) -> int:
        """Deletes up to `limit` entries sent before `sent_before`; returns how many."""


class OutboxChanges(ABC):
    """Word, across processes, that commands any relay may send now were committed to the
    outbox (written without a hold, by a process that has no relay of its own), so a relay
    need not wait for its next poll."""

    @abstractmethod
    def listen(self, stop: threading.Event, changed: Callable[[], None]) -> None:
        """Calls `changed` once listening (what was committed before is in the outbox already)
        and after each such commit, until `stop` is set. Raises StorageUnavailable when the
        store cannot be reached or the connection is lost: call it again after a pause."""


class Inbox(ABC):
    @abstractmethod
    def record(self, message_id: str, saga_id: str, now: datetime) -> bool:
        """Records a consumed (saga id, message id) pair; False if it was already recorded (a duplicate).
        The same message id for another saga is another message (docs/contract.md, "Message envelope")."""

    def record_many(self, messages: Sequence[tuple[str, str]], now: datetime) -> set[tuple[str, str]]:
        """Records consumed (saga id, message id) pairs; returns those that were new. A pair
        given twice is recorded once: the caller counts its second copy a duplicate. A store
        may write them all in one statement; by default it records one at a time."""
        return {pair for pair in dict.fromkeys(messages) if self.record(pair[1], pair[0], now)}

    @abstractmethod
    def purge(self, processed_before: datetime, limit: int) -> int:
        """Forgets up to `limit` message ids consumed before `processed_before`; returns how many.

        A message redelivered after that is still harmless: it no longer fits its saga's state.
        """


@dataclass(frozen=True)
class IdempotencyRecord:
    """A client's `Idempotency-Key` of `POST /api/orders` and the saga its first request made."""

    key: str
    request_digest: str
    """SHA-256 (hex) of the request body as a canonical JSON value."""
    saga_id: str
    created_at: datetime


class IdempotencyKeys(ABC):
    """Idempotency keys of order requests (docs/contract.md, "HTTP API"), written with their saga."""

    @abstractmethod
    def get(self, key: str, created_after: datetime) -> IdempotencyRecord | None:
        """The record of `key` if it was created after `created_after` (not expired), else None."""

    @abstractmethod
    def add(self, record: IdempotencyRecord, replacing_before: datetime) -> None:
        """Records a key in this unit of work, replacing an expired record of it (created
        before `replacing_before`).

        Raises ConcurrencyConflict, at commit at the latest, when a live record of the key
        exists or another unit of work is writing one: read it again.
        """

    def get_many(self, keys: Sequence[str], created_after: datetime) -> dict[str, IdempotencyRecord]:
        """`get` for each key, by key; a store may read them in one statement."""
        found: dict[str, IdempotencyRecord] = {}
        for key in dict.fromkeys(keys):
            record = self.get(key, created_after)
            if record is not None:
                found[key] = record
        return found

    def add_many(self, records: Sequence[IdempotencyRecord], replacing_before: datetime) -> None:
        """`add` for each record (their keys distinct); a store may write them in one statement.
        Raises ConcurrencyConflict when any one's key is taken, not saying which."""
        for record in records:
            self.add(record, replacing_before)

    @abstractmethod
    def purge(self, created_before: datetime, limit: int) -> int:
        """Deletes up to `limit` records created before `created_before`; returns how many."""


class UnitOfWork(ABC):
    """One transaction over sagas, outbox, inbox and idempotency keys; rolled back unless committed."""

    sagas: SagaRepository
    outbox: Outbox
    inbox: Inbox
    idempotency_keys: IdempotencyKeys

    def __enter__(self) -> UnitOfWork:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.rollback()

    @abstractmethod
    def commit(self) -> None:
        """Makes the work durable. Raises ConcurrencyConflict, DuplicateSaga or StorageUnavailable."""

    @abstractmethod
    def rollback(self) -> None:
        """Discards uncommitted work; harmless after commit."""


class UnitOfWorkFactory(Protocol):
    def __call__(self, read_only: bool = False) -> UnitOfWork:
        """A new unit of work; `read_only` promises it will write nothing, which lets a
        store that serialises writers (SQLite) run it beside them."""
