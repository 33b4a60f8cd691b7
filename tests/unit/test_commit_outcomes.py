"""What the use cases report about a transaction: only what its commit made true."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from dependency_injector import providers
from starlette.testclient import TestClient

from saga.adapters.clock import ManualClock
from saga.adapters.memory_store import InMemoryStore, InMemoryUnitOfWork
from saga.domain.messages import Event
from saga.domain.policy import SagaPolicy
from saga.domain.saga import CreateOrderSaga, SagaStatus
from saga.entrypoints.config import Settings
from saga.entrypoints.container import Container
from saga.entrypoints.http_api import create_app
from saga.ports.persistence import ConcurrencyConflict, StorageUnavailable, UnitOfWork
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


# ------------------------------------------- ambiguous commits and Idempotency-Key


class CommitFaults:
    """What the next commits do: "written" (committed, then the connection breaks), "lost"
    (rolled back, then it breaks); reads fail while `reads_fail` is set."""

    def __init__(self) -> None:
        self.commits: list[str] = []
        self.reads_fail = False


class FaultyUnitOfWork(InMemoryUnitOfWork):
    def __init__(self, store: InMemoryStore, faults: CommitFaults, read_only: bool = False) -> None:
        super().__init__(store, read_only)
        self._faults = faults
        self._read_only = read_only

    def __enter__(self) -> FaultyUnitOfWork:
        if self._read_only and self._faults.reads_fail:
            raise StorageUnavailable("OperationalError: connection refused")
        super().__enter__()
        return self

    def commit(self) -> None:
        fault = self._faults.commits.pop(0) if self._faults.commits else None
        if fault == "lost":
            self.rollback()
        else:
            super().commit()
        if fault is not None:
            raise StorageUnavailable("OperationalError: server closed the connection unexpectedly")


@pytest.fixture
def faults() -> CommitFaults:
    return CommitFaults()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def api(faults: CommitFaults, clock: ManualClock) -> Iterator[tuple[TestClient, SagaOrchestrator]]:
    container = Container(settings=Settings(database_url="memory://", transport="memory"))
    container.clock.override(providers.Object(clock))
    container.unit_of_work.override(providers.Factory(FaultyUnitOfWork, container.memory_store, faults))
    orchestrator = container.orchestrator()
    orchestrator.OUTCOME_PROBE_PAUSES = (0.0, 0.0, 0.0)
    yield TestClient(create_app(container), raise_server_exceptions=False), orchestrator
    container.unit_of_work.reset_override()


def all_sagas(orchestrator: SagaOrchestrator) -> list[str]:
    return [saga.id for saga in orchestrator.page(None, 1000, None).sagas]


ORDER = {"customer_id": "cust_1", "order_details": BURGER}


def test_an_order_whose_commit_lost_its_answer_but_was_written_is_answered_202(
    api: tuple[TestClient, SagaOrchestrator], faults: CommitFaults
) -> None:
    client, orchestrator = api
    faults.commits = ["written"]

    response = client.post("/api/orders", json=ORDER)

    assert response.status_code == 202
    assert all_sagas(orchestrator) == [response.json()["saga_id"]]


def test_an_order_whose_transaction_was_lost_is_answered_503_and_nothing_exists(
    api: tuple[TestClient, SagaOrchestrator], faults: CommitFaults
) -> None:
    client, orchestrator = api
    faults.commits = ["lost"]

    response = client.post("/api/orders", json=ORDER)

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert all_sagas(orchestrator) == []


def test_an_order_whose_outcome_cannot_be_learned_is_answered_504_with_its_saga_id(
    api: tuple[TestClient, SagaOrchestrator], faults: CommitFaults
) -> None:
    client, orchestrator = api
    faults.commits = ["written"]
    faults.reads_fail = True

    response = client.post("/api/orders", json=ORDER, headers={"Idempotency-Key": "order-504"})

    assert response.status_code == 504
    body = response.json()
    assert body["success"] is False and "Idempotency-Key" in body["error"]
    faults.reads_fail = False
    assert all_sagas(orchestrator) == [body["saga_id"]]
    # The client repeats the request with its key, as the 504 tells it: the same saga, not a second one.
    again = client.post("/api/orders", json=ORDER, headers={"Idempotency-Key": "order-504"})
    assert again.status_code == 202 and again.json()["saga_id"] == body["saga_id"]
    assert all_sagas(orchestrator) == [body["saga_id"]]


def test_the_same_key_and_body_answer_the_first_202_again_and_make_one_saga(
    api: tuple[TestClient, SagaOrchestrator],
) -> None:
    client, orchestrator = api
    first = client.post("/api/orders", json=ORDER, headers={"Idempotency-Key": "k-1"})
    # The same JSON value, spelled differently: key order, spacing, 12.990 for 12.99.
    spelled = '{"order_details": {"foodItems": [{"quantity": 1, "price": 12.990, "name": "Burger"}]},  "customer_id": "cust_1"}'
    again = client.post(
        "/api/orders", content=spelled, headers={"Idempotency-Key": "k-1", "Content-Type": "application/json"}
    )

    assert first.status_code == again.status_code == 202
    assert again.json() == first.json() == {"success": True, "saga_id": first.json()["saga_id"], "status": "STARTED"}
    assert all_sagas(orchestrator) == [first.json()["saga_id"]]
    other_key = client.post("/api/orders", json=ORDER, headers={"Idempotency-Key": "k-2"})
    assert other_key.status_code == 202 and other_key.json()["saga_id"] != first.json()["saga_id"]


def test_the_same_key_with_another_body_is_a_422_and_writes_nothing(api: tuple[TestClient, SagaOrchestrator]) -> None:
    client, orchestrator = api
    client.post("/api/orders", json=ORDER, headers={"Idempotency-Key": "k-1"})

    response = client.post("/api/orders", json={**ORDER, "customer_id": "cust_2"}, headers={"Idempotency-Key": "k-1"})

    assert response.status_code == 422
    assert response.json()["success"] is False and "Idempotency-Key" in response.json()["error"]
    assert len(all_sagas(orchestrator)) == 1


@pytest.mark.parametrize("key", ["", "x" * 201, "with space", "naïve", "tab\there"])
def test_a_key_that_is_not_1_to_200_visible_ascii_characters_is_a_400(
    api: tuple[TestClient, SagaOrchestrator], key: str
) -> None:
    client, orchestrator = api
    response = client.post("/api/orders", json=ORDER, headers={"Idempotency-Key": key.encode("utf-8")})
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["error"]
    assert all_sagas(orchestrator) == []


def test_a_key_of_200_visible_characters_is_taken(api: tuple[TestClient, SagaOrchestrator]) -> None:
    client, _ = api
    key = ("!~" * 100)[:200]
    assert client.post("/api/orders", json=ORDER, headers={"Idempotency-Key": key}).status_code == 202


def test_a_key_is_kept_24_hours(api: tuple[TestClient, SagaOrchestrator], clock: ManualClock) -> None:
    client, orchestrator = api
    first = client.post("/api/orders", json=ORDER, headers={"Idempotency-Key": "k-day"}).json()["saga_id"]
    clock.advance(timedelta(hours=23, minutes=59))
    assert client.post("/api/orders", json=ORDER, headers={"Idempotency-Key": "k-day"}).json()["saga_id"] == first
    clock.advance(timedelta(minutes=2))
    later = client.post("/api/orders", json=ORDER, headers={"Idempotency-Key": "k-day"}).json()["saga_id"]
    assert later != first
    assert len(all_sagas(orchestrator)) == 2


def test_a_cancel_whose_commit_lost_its_answer_is_answered_202(
    api: tuple[TestClient, SagaOrchestrator], faults: CommitFaults
) -> None:
    client, orchestrator = api
    saga_id = orchestrator.start("cust_1", BURGER).id
    faults.commits = ["written"]

    response = client.post(f"/api/sagas/{saga_id}/cancel")

    assert response.status_code == 202
    saga = orchestrator.get(saga_id)
    assert saga is not None and saga.cancel_requested


def test_a_cancel_whose_transaction_was_lost_is_a_503(
    api: tuple[TestClient, SagaOrchestrator], faults: CommitFaults
) -> None:
    client, orchestrator = api
    saga_id = orchestrator.start("cust_1", BURGER).id
    faults.commits = ["lost"]

    assert client.post(f"/api/sagas/{saga_id}/cancel").status_code == 503
    saga = orchestrator.get(saga_id)
    assert saga is not None and not saga.cancel_requested


def compensation_failed_saga(orchestrator: SagaOrchestrator, clock: ManualClock) -> str:
    """A saga whose cancel_order was given up (its order service never answered), stored as is."""
    policy = SagaPolicy()
    saga, _ = CreateOrderSaga.start(str(uuid.uuid4()), "cust_1", BURGER, 1299, "USD", clock.now(), policy)
    saga.handle(Event("order.created", saga.id, {"order_id": "order-1"}, clock.now()), clock.now(), policy)
    saga.cancel("changed my mind", clock.now(), policy)
    while saga.due_at is not None:
        saga.on_deadline(saga.due_at, policy)
    assert saga.status is SagaStatus.COMPENSATION_FAILED
    with orchestrator._uow_factory() as uow:  # the fixture's store, written directly
        uow.sagas.add(saga)
        uow.commit()
    return saga.id


def test_a_retry_whose_commit_lost_its_answer_but_was_written_is_answered_202(
    api: tuple[TestClient, SagaOrchestrator], faults: CommitFaults, clock: ManualClock
) -> None:
    client, orchestrator = api
    saga_id = compensation_failed_saga(orchestrator, clock)
    faults.commits = ["written"]

    response = client.post(f"/api/sagas/{saga_id}/retry")

    assert response.status_code == 202
    stored = orchestrator.get(saga_id)
    assert stored is not None and stored.status.value == "COMPENSATING"


def test_a_retry_whose_transaction_was_lost_is_a_503_and_changes_nothing(
    api: tuple[TestClient, SagaOrchestrator], faults: CommitFaults, clock: ManualClock
) -> None:
    client, orchestrator = api
    saga_id = compensation_failed_saga(orchestrator, clock)
    faults.commits = ["lost"]

    response = client.post(f"/api/sagas/{saga_id}/retry")

    assert response.status_code == 503
    stored = orchestrator.get(saga_id)
    assert stored is not None and stored.status.value == "COMPENSATION_FAILED"


def test_a_retry_whose_outcome_cannot_be_learned_is_a_504(
    api: tuple[TestClient, SagaOrchestrator], faults: CommitFaults, clock: ManualClock
) -> None:
    client, orchestrator = api
    saga_id = compensation_failed_saga(orchestrator, clock)
    faults.commits = ["written"]
    faults.reads_fail = True

    response = client.post(f"/api/sagas/{saga_id}/retry")

    assert response.status_code == 504
    assert response.json()["saga_id"] == saga_id
