"""What the use cases report about a transaction: only what its commit made true."""

from __future__ import annotations

import logging

import pytest

from saga.adapters.clock import ManualClock
from saga.adapters.memory_store import InMemoryStore, InMemoryUnitOfWork
from saga.domain.policy import SagaPolicy
from saga.ports.persistence import ConcurrencyConflict, UnitOfWork
from saga.service_layer.metrics import Metrics
from saga.service_layer.orchestrator import SagaOrchestrator

BURGER = {"foodItems": [{"name": "Burger", "price": 12.99, "quantity": 1}]}


class ConflictOnceUnitOfWork(InMemoryUnitOfWork):
    """Its commit raises ConcurrencyConflict, writing nothing, while `conflicts` lasts."""

    def __init__(self, store: InMemoryStore, conflicts: list[int], read_only: bool = False) -> None:
        super().__init__(store, read_only)
        self._conflicts = conflicts

    def commit(self) -> None:
        if self._conflicts[0] > 0:
            self._conflicts[0] -= 1
            raise ConcurrencyConflict("another unit of work moved the saga")
        super().commit()


def test_withdrawn_commands_are_logged_once_after_the_commit_not_per_try(caplog: pytest.LogCaptureFixture) -> None:
    store = InMemoryStore()
    conflicts = [0]

    def uow_factory(read_only: bool = False) -> UnitOfWork:
        return ConflictOnceUnitOfWork(store, conflicts, read_only)

    # No dispatch queue: create_order stays unsent in the outbox until a relay polls.
    orchestrator = SagaOrchestrator(uow_factory, ManualClock(), SagaPolicy(), Metrics())
    saga = orchestrator.start("cust_1", BURGER)
    conflicts[0] = 1  # the cancel's first transaction rolls back

    with caplog.at_level(logging.INFO, logger="saga.service_layer.orchestrator"):
        cancelled = orchestrator.cancel(saga.id, "changed my mind")

    assert cancelled is not None and cancelled.cancel_requested
    withdrawn = [record.getMessage() for record in caplog.records if "withdrawn" in record.getMessage()]
    assert withdrawn == [f"saga {saga.id}: 1 unsent command(s) withdrawn"]
