"""The in-memory store held to the persistence contract, and to how its units of work take turns."""

from __future__ import annotations

import threading
import time
from functools import partial

import pytest
from tests.unit.persistence_contract import RENDEZVOUS_TIMEOUT, PersistenceContract, make_saga

from saga.adapters.memory_store import InMemoryStore, InMemoryUnitOfWork
from saga.ports.persistence import StorageUnavailable, UnitOfWorkFactory


class TestInMemoryStore(PersistenceContract):
    @pytest.fixture
    def uow_factory(self) -> UnitOfWorkFactory:
        store = InMemoryStore()
        return partial(InMemoryUnitOfWork, store)


@pytest.fixture
def store() -> InMemoryStore:
    return InMemoryStore()


def test_a_unit_of_work_waits_for_the_one_before_it(store: InMemoryStore) -> None:
    saga = make_saga()
    seen: list[object] = []

    def read() -> None:
        with InMemoryUnitOfWork(store, read_only=True) as uow:
            seen.append(uow.sagas.get(saga.id))

    reader = threading.Thread(target=read)
    with InMemoryUnitOfWork(store) as writer:
        writer.sagas.add(saga)
        reader.start()
        time.sleep(0.2)
        assert reader.is_alive() and seen == []
        writer.commit()
    reader.join(timeout=RENDEZVOUS_TIMEOUT)

    assert seen == [saga]


def test_a_store_held_past_the_busy_timeout_is_storage_unavailable() -> None:
    store = InMemoryStore(busy_timeout=0.05)
    outcome: list[BaseException] = []

    def try_to_enter() -> None:
        try:
            with InMemoryUnitOfWork(store):
                pass
        except StorageUnavailable as error:
            outcome.append(error)

    with InMemoryUnitOfWork(store):
        other = threading.Thread(target=try_to_enter)
        other.start()
        other.join(timeout=RENDEZVOUS_TIMEOUT)

    assert len(outcome) == 1


def test_a_second_unit_of_work_in_the_same_thread_fails_at_once(store: InMemoryStore) -> None:
    with InMemoryUnitOfWork(store), pytest.raises(RuntimeError, match="already holds"), InMemoryUnitOfWork(store):
        pass
    with InMemoryUnitOfWork(store) as uow:  # the store was let go
        assert uow.sagas.get("anything") is None


def test_a_unit_of_work_used_outside_its_block_says_so(store: InMemoryStore) -> None:
    with pytest.raises(RuntimeError, match="outside"):
        InMemoryUnitOfWork(store).sagas.get("anything")
