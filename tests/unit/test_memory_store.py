"""The in-memory store held to the persistence contract, and to what database locks would do."""

from __future__ import annotations

from functools import partial

import pytest
from tests.unit.persistence_contract import (
    LEASE,
    T0,
    OverlappingTransactionsContract,
    PersistenceContract,
    make_command,
    make_saga,
)

from saga.adapters.memory_store import InMemoryStore, InMemoryUnitOfWork
from saga.domain.saga import SagaStatus
from saga.ports.persistence import ConcurrencyConflict, DuplicateSaga, UnitOfWorkFactory


class TestInMemoryStore(PersistenceContract, OverlappingTransactionsContract):
    @pytest.fixture
    def uow_factory(self) -> UnitOfWorkFactory:
        store = InMemoryStore()
        return partial(InMemoryUnitOfWork, store)


# Interleavings PostgreSQL resolves by making the second writer wait for the first; the
# in-memory store does not block, so it must catch the same conflicts at commit.


@pytest.fixture
def store() -> InMemoryStore:
    return InMemoryStore()


def test_a_conflict_not_visible_at_save_is_caught_at_commit(store: InMemoryStore) -> None:
    saga = make_saga()
    with InMemoryUnitOfWork(store) as uow:
        uow.sagas.add(saga)
        uow.commit()
    first, second = InMemoryUnitOfWork(store), InMemoryUnitOfWork(store)
    with first, second:
        mine, theirs = first.sagas.get(saga.id), second.sagas.get(saga.id)
        assert mine is not None and theirs is not None
        mine.error, theirs.error = "first", "second"
        first.sagas.save(mine)
        second.sagas.save(theirs)
        first.commit()
        with pytest.raises(ConcurrencyConflict):
            second.commit()

    with InMemoryUnitOfWork(store) as uow:
        stored = uow.sagas.get(saga.id)
    assert stored is not None and stored.error == "first" and stored.version == 1


def test_an_id_taken_after_add_is_a_duplicate_saga_at_commit(store: InMemoryStore) -> None:
    saga = make_saga()
    first, second = InMemoryUnitOfWork(store), InMemoryUnitOfWork(store)
    with first, second:
        first.sagas.add(saga)
        second.sagas.add(make_saga(saga.id, status=SagaStatus.STARTED))
        first.commit()
        with pytest.raises(DuplicateSaga):
            second.commit()

    with InMemoryUnitOfWork(store) as uow:
        assert uow.sagas.get(saga.id) == saga


def test_a_message_recorded_by_two_units_of_work_commits_once(store: InMemoryStore) -> None:
    first, second = InMemoryUnitOfWork(store), InMemoryUnitOfWork(store)
    with first, second:
        assert first.inbox.record("message-1", "saga-1", T0)
        assert second.inbox.record("message-1", "saga-1", T0)
        first.commit()
        with pytest.raises(ConcurrencyConflict):
            second.commit()


def test_marking_sent_is_not_undone_by_a_later_claim_of_the_same_entry(store: InMemoryStore) -> None:
    """A relay whose lease ran out still marks its entry sent; another relay's claim,
    committed afterwards, must not bring the entry back (an SQL UPDATE changes only
    the columns it names)."""
    with InMemoryUnitOfWork(store) as uow:
        uow.outbox.add([make_command("saga-1")])
        uow.commit()
    with InMemoryUnitOfWork(store) as slow_relay:
        [entry] = slow_relay.outbox.claim(T0, 10, LEASE)
        slow_relay.commit()

    with InMemoryUnitOfWork(store) as second_relay:
        assert [claimed.id for claimed in second_relay.outbox.claim(T0 + LEASE, 10, LEASE)] == [entry.id]
        with InMemoryUnitOfWork(store) as slow_relay:
            slow_relay.outbox.mark_sent([entry.id], T0 + LEASE)
            slow_relay.commit()
        second_relay.commit()

    with InMemoryUnitOfWork(store) as uow:
        assert uow.outbox.pending_count() == 0
        assert uow.outbox.claim(T0 + 10 * LEASE, 10, LEASE) == []
