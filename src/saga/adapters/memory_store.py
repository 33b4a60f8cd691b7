"""The persistence port in memory, for tests and the single-process simulation.

One unit of work at a time holds the store, from entering its block to leaving it,
as SQLite's `BEGIN IMMEDIATE` makes writers queue: a unit of work reads and writes
the committed state directly and notes what each write replaced, so a rollback puts
it back. Isolation, the version check and the outbox's locks then need nothing more.
Sagas and commands are copied in and out, so a caller's object never aliases stored
state.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Sequence
from copy import deepcopy
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from saga.domain.messages import Command
from saga.domain.saga import CreateOrderSaga, ResourceRef, SagaStatus
from saga.ports.persistence import (
    ConcurrencyConflict,
    DuplicateSaga,
    IdempotencyKeys,
    IdempotencyRecord,
    Inbox,
    Outbox,
    OutboxEntry,
    PageCursor,
    RetryLater,
    SagaPage,
    SagaRepository,
    StorageUnavailable,
    UnitOfWork,
)

BUSY_TIMEOUT_SECONDS = 30.0
"""How long a unit of work waits for the one holding the store, as SQLite's busy timeout."""


@dataclass(frozen=True)
class StoredOutboxEntry:
    id: int
    command: Command
    attempts: int
    available_at: datetime
    last_error: str | None = None


@dataclass(frozen=True)
class InboxRecord:
    saga_id: str
    processed_at: datetime


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def _stored_saga(saga: CreateOrderSaga) -> CreateOrderSaga:
    """A private copy with its datetimes in UTC, as a database gives them back."""
    copy = deepcopy(saga)
    copy.created_at = _utc(copy.created_at)
    copy.updated_at = _utc(copy.updated_at)
    copy.completed_at = _utc(copy.completed_at) if copy.completed_at is not None else None
    if copy.awaiting is not None:
        copy.awaiting = replace(copy.awaiting, due_at=_utc(copy.awaiting.due_at))
    copy.history = [replace(entry, at=_utc(entry.at)) for entry in copy.history]
    return copy


def _stored_command(command: Command) -> Command:
    return replace(deepcopy(command), timestamp=_utc(command.timestamp))


def _listing_key(saga: CreateOrderSaga) -> tuple[datetime, str]:
    return (saga.created_at, saga.id)


_ABSENT = object()


class InMemoryStore:
    """The committed state of one process, held by one unit of work at a time."""

    def __init__(self, busy_timeout: float = BUSY_TIMEOUT_SECONDS) -> None:
        self.busy_timeout = busy_timeout
        self.lock = threading.Lock()
        self.holder: int | None = None
        """The thread whose unit of work holds the store."""
        self.sagas: dict[str, CreateOrderSaga] = {}
        self.due_at: dict[str, datetime] = {}
        """Deadlines of the sagas still in flight, so a sweep need not look at finished ones."""
        self.unsent: dict[int, StoredOutboxEntry] = {}
        """Outbox entries not yet sent. Sent ones are dropped: nothing in the port reads them again."""
        self.holders: dict[ResourceRef, str] = {}
        """The first saga stored holding each resource: sagas never let go of one."""
        self.inbox: dict[tuple[str, str], InboxRecord] = {}
        self.idempotency_keys: dict[str, IdempotencyRecord] = {}
        self.last_outbox_id = 0
        """Like a database sequence: ids taken by a rolled-back unit of work are not reused."""


class InMemoryUnitOfWork(UnitOfWork):
    """Holds the store from `with` to the end of the block; `read_only` changes nothing here."""

    def __init__(self, store: InMemoryStore, read_only: bool = False) -> None:
        self.store = store
        self._open = False
        self._replaced: list[tuple[dict[Any, Any], Any, Any]] = []
        """(table, key, value before) per write since the last commit, for rollback."""
        self.sagas = InMemorySagaRepository(self)
        self.outbox: InMemoryOutbox = InMemoryOutbox(self)
        self.inbox = InMemoryInbox(self)
        self.idempotency_keys = InMemoryIdempotencyKeys(self)

    def __enter__(self) -> InMemoryUnitOfWork:
        store = self.store
        if self._open:
            raise RuntimeError("the unit of work is already open")
        if store.holder == threading.get_ident():
            raise RuntimeError("this thread already holds the in-memory store in another unit of work")
        if not store.lock.acquire(timeout=store.busy_timeout):
            raise StorageUnavailable(f"the in-memory store stayed locked for {store.busy_timeout:.0f}s")
        store.holder = threading.get_ident()
        self._open = True
        return self

    def __exit__(self, *exc_info: object) -> None:
        if not self._open:
            return
        try:
            self.rollback()
        finally:
            self._open = False
            self.store.holder = None
            self.store.lock.release()

    def commit(self) -> None:
        self.state()
        self._replaced.clear()
        self.outbox.end_claims()

    def rollback(self) -> None:
        self.outbox.end_claims()
        for table, key, before in reversed(self._replaced):
            if before is _ABSENT:
                table.pop(key, None)
            else:
                table[key] = before
        self._replaced.clear()

    def state(self) -> InMemoryStore:
        """The store, once this unit of work holds it."""
        if not self._open:
            raise RuntimeError("the unit of work is used outside its `with` block")
        return self.store

    def write(self, table: dict[Any, Any], key: Any, value: Any) -> None:
        """Sets (or, with None, deletes) one entry of a table, noting what it replaces."""
        self._replaced.append((table, key, table.get(key, _ABSENT)))
        if value is None:
            table.pop(key, None)
        else:
            table[key] = value


class InMemorySagaRepository(SagaRepository):
    def __init__(self, uow: InMemoryUnitOfWork) -> None:
        self._uow = uow

    def add(self, saga: CreateOrderSaga) -> None:
        store = self._uow.state()
        if saga.id in store.sagas:
            raise DuplicateSaga(saga.id)
        self._store(store, _stored_saga(saga))

    def get(self, saga_id: str) -> CreateOrderSaga | None:
        return deepcopy(self._uow.state().sagas.get(saga_id))

    def save(self, saga: CreateOrderSaga) -> None:
        store = self._uow.state()
        current = store.sagas.get(saga.id)
        if current is None or current.version != saga.version:
            raise ConcurrencyConflict(f"saga {saga.id} is no longer at version {saga.version}")
        copy = _stored_saga(saga)
        copy.version += 1
        self._store(store, copy)
        saga.version = copy.version

    def _store(self, store: InMemoryStore, saga: CreateOrderSaga) -> None:
        self._uow.write(store.sagas, saga.id, saga)
        self._uow.write(store.due_at, saga.id, saga.due_at)
        for ref in saga.held_resources:
            if ref not in store.holders:
                self._uow.write(store.holders, ref, saga.id)

    def holders(self, resources: Collection[ResourceRef]) -> dict[ResourceRef, str]:
        known = self._uow.state().holders
        return {ref: known[ref] for ref in resources if ref in known}

    def page(
        self, status: SagaStatus | None, limit: int, after: PageCursor | None, unconfirmed_cleanup: bool = False
    ) -> SagaPage:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        candidates = [
            saga
            for saga in self._uow.state().sagas.values()
            if (status is None or saga.status is status)
            and (not unconfirmed_cleanup or saga.has_unconfirmed_cleanup)
            and (after is None or _listing_key(saga) < (after.created_at, after.saga_id))
        ]
        candidates.sort(key=_listing_key, reverse=True)
        found = deepcopy(candidates[:limit])
        next_cursor = PageCursor(found[-1].created_at, found[-1].id) if len(candidates) > limit else None
        return SagaPage(found, next_cursor)

    def due(self, now: datetime, limit: int) -> list[str]:
        passed = sorted((due_at, saga_id) for saga_id, due_at in self._uow.state().due_at.items() if due_at <= now)
        return [saga_id for _, saga_id in passed[:limit]]

    def count_by_status(self) -> dict[SagaStatus, int]:
        counts = dict.fromkeys(SagaStatus, 0)
        for saga in self._uow.state().sagas.values():
            counts[saga.status] += 1
        return counts

    def search(self, term: str, limit: int) -> list[CreateOrderSaga]:
        found = [
            saga for saga in self._uow.state().sagas.values() if term in (saga.id, saga.customer_id, saga.order_id)
        ]
        found.sort(key=_listing_key, reverse=True)
        return deepcopy(found[:limit])


class InMemoryOutbox(Outbox):
    def __init__(self, uow: InMemoryUnitOfWork) -> None:
        self._uow = uow
        self._claimed: dict[int, StoredOutboxEntry] = {}
        """Entries this unit of work claimed, as they were, for `retry`."""

    def add(self, commands: Sequence[Command], hold_until: datetime | None = None) -> None:
        store = self._uow.state()
        for command in commands:
            stored = _stored_command(command)
            store.last_outbox_id += 1
            available_at = _utc(hold_until) if hold_until is not None else stored.timestamp
            self._uow.write(
                store.unsent, store.last_outbox_id, StoredOutboxEntry(store.last_outbox_id, stored, 0, available_at)
            )

    def claim_due(self, now: datetime, limit: int) -> list[OutboxEntry]:
        due = sorted(
            (entry for entry in self._uow.state().unsent.values() if entry.available_at <= now),
            key=lambda e: (e.available_at, e.id),
        )
        return self._claim(due[:limit])

    def claim_by_message_ids(self, message_ids: Sequence[str], now: datetime) -> list[OutboxEntry]:
        wanted = set(message_ids)
        found = sorted(
            (entry for entry in self._uow.state().unsent.values() if entry.command.message_id in wanted),
            key=lambda e: e.id,
        )
        return self._claim(found)

    def _claim(self, entries: list[StoredOutboxEntry]) -> list[OutboxEntry]:
        # Sent entries are dropped; the claimed ones are kept aside for `retry` to put back.
        store = self._uow.state()
        for entry in entries:
            self._uow.write(store.unsent, entry.id, None)
            self._claimed[entry.id] = entry
        return [OutboxEntry(entry.id, deepcopy(entry.command), entry.attempts) for entry in entries]

    def end_claims(self) -> None:
        """The transaction ended: what it claimed is sent or, rolled back, unsent again."""
        self._claimed.clear()

    def retry(self, later: Sequence[RetryLater]) -> None:
        store = self._uow.state()
        for again in later:
            entry = self._claimed.pop(again.entry_id, None)
            if entry is not None:
                back = replace(entry, available_at=_utc(again.at), attempts=entry.attempts + 1, last_error=again.error)
                self._uow.write(store.unsent, entry.id, back)

    def awaiting_delivery(self, message_id: str) -> bool:
        return any(entry.command.message_id == message_id for entry in self._uow.state().unsent.values())

    def discard_unsent(self, saga_id: str, now: datetime) -> int:
        store = self._uow.state()
        withdrawn = [entry.id for entry in store.unsent.values() if entry.command.saga_id == saga_id]
        for entry_id in withdrawn:
            self._uow.write(store.unsent, entry_id, None)
        return len(withdrawn)

    def pending_count(self) -> int:
        return len(self._uow.state().unsent)

    def oldest_pending_at(self) -> datetime | None:
        return min((entry.command.timestamp for entry in self._uow.state().unsent.values()), default=None)

    def purge_sent(self, sent_before: datetime, limit: int) -> int:
        self._uow.state()
        return 0  # sent entries are dropped when settled: nothing is kept to purge


class InMemoryInbox(Inbox):
    def __init__(self, uow: InMemoryUnitOfWork) -> None:
        self._uow = uow

    def record(self, message_id: str, saga_id: str, now: datetime) -> bool:
        store = self._uow.state()
        if (saga_id, message_id) in store.inbox:
            return False
        self._uow.write(store.inbox, (saga_id, message_id), InboxRecord(saga_id, now))
        return True

    def purge(self, processed_before: datetime, limit: int) -> int:
        store = self._uow.state()
        old = sorted(
            (record.processed_at, key) for key, record in store.inbox.items() if record.processed_at < processed_before
        )[:limit]
        for _, key in old:
            self._uow.write(store.inbox, key, None)
        return len(old)


class InMemoryIdempotencyKeys(IdempotencyKeys):
    def __init__(self, uow: InMemoryUnitOfWork) -> None:
        self._uow = uow

    def get(self, key: str, created_after: datetime) -> IdempotencyRecord | None:
        record = self._uow.state().idempotency_keys.get(key)
        return record if record is not None and record.created_at > created_after else None

    def add(self, record: IdempotencyRecord, replacing_before: datetime) -> None:
        store = self._uow.state()
        existing = store.idempotency_keys.get(record.key)
        if existing is not None and existing.created_at >= replacing_before:
            raise ConcurrencyConflict(f"idempotency key {record.key!r} is taken")
        self._uow.write(store.idempotency_keys, record.key, record)

    def purge(self, created_before: datetime, limit: int) -> int:
        store = self._uow.state()
        old = sorted(
            (record.created_at, key)
            for key, record in store.idempotency_keys.items()
            if record.created_at < created_before
        )
        for _, key in old[:limit]:
            self._uow.write(store.idempotency_keys, key, None)
        return len(old[:limit])
