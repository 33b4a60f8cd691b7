"""Orders that arrive together are written together (group commit), and each still gets
its own answer (docs/contract.md, "HTTP API": 202, 422, 503, 504, `Idempotency-Key`)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from dependency_injector import providers
from sqlalchemy import Engine, event, func, select
from starlette.testclient import TestClient

from saga.adapters.clock import ManualClock
from saga.adapters.memory_store import InMemorySagaRepository, InMemoryStore, InMemoryUnitOfWork
from saga.adapters.sql import SqlAlchemyUnitOfWork, create_engine_from_url
from saga.adapters.sql.migrations import upgrade
from saga.adapters.sql.schema import outbox, sagas
from saga.domain.policy import SagaPolicy
from saga.domain.saga import CreateOrderSaga
from saga.entrypoints.config import Settings
from saga.entrypoints.container import Container
from saga.entrypoints.http_api import create_app
from saga.ports.persistence import CommitOutcomeUnknown, DuplicateSaga, StorageUnavailable, UnitOfWork
from saga.service_layer.metrics import Metrics
from saga.service_layer.orchestrator import IdempotencyKeyReused, SagaOrchestrator

BURGER = {"foodItems": [{"name": "Burger", "price": 12.99, "quantity": 1}]}
FRIES = {"foodItems": [{"name": "Fries", "price": 3.5, "quantity": 1}]}


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


# ----------------------------------------------------------------- a real database


def test_orders_started_at_once_commit_in_fewer_transactions_than_orders_each_with_its_own_saga(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path}/saga.db"
    upgrade(url)
    engine = create_engine_from_url(url)
    commits = [0]

    @event.listens_for(engine, "commit")
    def count(connection: Any) -> None:
        commits[0] += 1
        time.sleep(0.003)  # a commit that takes as long as a disk's flush: others arrive meanwhile

    def uow_factory(read_only: bool = False) -> UnitOfWork:
        return SqlAlchemyUnitOfWork(engine, read_only)

    orchestrator = SagaOrchestrator(uow_factory, ManualClock(), SagaPolicy(), Metrics())

    start_orders_at_once(orchestrator, engine, commits, 200)
    engine.dispose()


def start_orders_at_once(orchestrator: SagaOrchestrator, engine: Engine, commits: list[int], orders: int) -> None:
    """Starts `orders` orders from 8 threads, every other one with an Idempotency-Key, and checks
    that they took fewer than half as many commits (counted in `commits[0]`) and each has its own saga."""

    def start(index: int) -> str:
        if index % 2:
            return orchestrator.start(f"cust_{index}", BURGER).id
        return orchestrator.start_once(f"cust_{index}", BURGER, f"key-{index}", f"digest-{index}")

    with ThreadPoolExecutor(max_workers=8) as pool:
        saga_ids = list(pool.map(start, range(orders)))

    assert len(set(saga_ids)) == orders
    assert commits[0] < orders / 2
    with engine.connect() as connection:
        stored = dict(connection.execute(select(sagas.c.id, sagas.c.customer_id)).all())
        assert connection.execute(select(func.count()).select_from(outbox)).scalar_one() == orders
    assert all(stored[saga_id] == f"cust_{index}" for index, saga_id in enumerate(saga_ids))


# ------------------------------------------------ one batch, held while others queue


class Gate:
    """Holds the first start transaction's commit until `release`; later commits may fail."""

    def __init__(self) -> None:
        self.holding = threading.Event()
        self.release = threading.Event()
        self.held = False
        self.commits: list[str] = []
        """What the next commits do: "ok", "written" (committed, then the connection
        breaks), "lost" (rolled back, then it breaks)."""
        self.reads_fail = False
        self.transactions = 0


class GatedUnitOfWork(InMemoryUnitOfWork):
    def __init__(self, store: InMemoryStore, gate: Gate, read_only: bool = False) -> None:
        super().__init__(store, read_only)
        self._gate = gate
        self._read_only = read_only
        self.sagas = TakenIdRepository(self)

    def __enter__(self) -> GatedUnitOfWork:
        if self._read_only and self._gate.reads_fail:
            raise StorageUnavailable("OperationalError: connection refused")
        super().__enter__()
        return self

    def commit(self) -> None:
        gate = self._gate
        gate.transactions += 1
        if not gate.held:
            gate.held = True
            gate.holding.set()
            assert gate.release.wait(10)
        fault = gate.commits.pop(0) if gate.commits else None
        if fault == "lost":
            self.rollback()
        else:
            super().commit()
        if fault in ("written", "lost"):
            raise StorageUnavailable("OperationalError: server closed the connection unexpectedly")


class TakenIdRepository(InMemorySagaRepository):
    """A saga of customer `taken` finds its id taken, as if a saga with it existed."""

    def add(self, saga: CreateOrderSaga) -> None:
        if saga.customer_id == "taken":
            raise DuplicateSaga(saga.id)
        super().add(saga)


@pytest.fixture
def gate() -> Gate:
    return Gate()


@pytest.fixture
def store() -> InMemoryStore:
    return InMemoryStore()


@pytest.fixture
def orchestrator(store: InMemoryStore, gate: Gate) -> SagaOrchestrator:
    def uow_factory(read_only: bool = False) -> UnitOfWork:
        return GatedUnitOfWork(store, gate, read_only)

    orchestrator = SagaOrchestrator(uow_factory, ManualClock(), SagaPolicy(), Metrics())
    orchestrator.OUTCOME_PROBE_PAUSES = (0.0, 0.0, 0.0)
    return orchestrator


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=16) as pool:
        yield pool


def one_batch(
    orchestrator: SagaOrchestrator, gate: Gate, pool: ThreadPoolExecutor, starts: list[Callable[[], str]]
) -> list[Future[str]]:
    """A first order is being committed (held) while `starts` arrive; then they are written
    together in the next transaction. Returns their futures, in order."""
    pool.submit(orchestrator.start, "cust_first", BURGER)
    assert gate.holding.wait(10)
    futures = []
    for start in starts:  # one at a time, so the batch keeps their order
        futures.append(pool.submit(start))
        wait_until(lambda: orchestrator._starts.queued == len(futures))
    gate.release.set()
    for future in futures:
        future.exception(10)
    return futures


def stored_sagas(store: InMemoryStore) -> dict[str, str]:
    """Saga id: customer id, of every stored saga."""
    return {saga.id: saga.customer_id for saga in store.sagas.values()}


def test_two_requests_with_one_key_in_one_batch_make_one_saga_and_a_third_body_is_refused_alone(
    orchestrator: SagaOrchestrator, gate: Gate, pool: ThreadPoolExecutor, store: InMemoryStore
) -> None:
    futures = one_batch(
        orchestrator,
        gate,
        pool,
        [
            lambda: orchestrator.start_once("cust_1", BURGER, "k", "digest-1"),
            lambda: orchestrator.start_once("cust_1", BURGER, "k", "digest-1"),
            lambda: orchestrator.start_once("cust_2", FRIES, "k", "digest-2"),
            lambda: orchestrator.start("cust_3", BURGER).id,
        ],
    )

    first, again, other_body, no_key = futures
    assert first.result() == again.result()
    assert isinstance(other_body.exception(), IdempotencyKeyReused)
    assert gate.transactions == 2  # the first order's, and one for the four that queued behind it
    assert sorted(stored_sagas(store).values()) == ["cust_1", "cust_3", "cust_first"]
    assert stored_sagas(store)[first.result()] == "cust_1"
    assert stored_sagas(store)[no_key.result()] == "cust_3"


def test_a_saga_whose_id_is_taken_fails_alone_and_the_others_of_its_batch_are_written(
    orchestrator: SagaOrchestrator, gate: Gate, pool: ThreadPoolExecutor, store: InMemoryStore
) -> None:
    futures = one_batch(
        orchestrator,
        gate,
        pool,
        [
            lambda: orchestrator.start("cust_1", BURGER).id,
            lambda: orchestrator.start("taken", BURGER).id,
            lambda: orchestrator.start_once("cust_2", BURGER, "k-2", "digest"),
        ],
    )

    assert isinstance(futures[1].exception(), DuplicateSaga)
    written = stored_sagas(store)
    assert written[futures[0].result()] == "cust_1" and written[futures[2].result()] == "cust_2"
    assert "taken" not in written.values()


@pytest.mark.parametrize("fault", ["written", "lost", "unknown"])
def test_after_a_batch_commit_lost_its_answer_each_order_learns_its_own_saga_fate(
    orchestrator: SagaOrchestrator, gate: Gate, pool: ThreadPoolExecutor, store: InMemoryStore, fault: str
) -> None:
    gate.held = True  # not this one
    before_key = orchestrator.start_once("cust_0", BURGER, "old-key", "digest-0")  # committed earlier
    gate.held = False
    gate.commits = ["ok", "lost" if fault == "lost" else "written"]  # the held first order's, the batch's
    gate.reads_fail = fault == "unknown"

    futures = one_batch(
        orchestrator,
        gate,
        pool,
        [
            lambda: orchestrator.start("cust_1", BURGER).id,
            lambda: orchestrator.start_once("cust_2", BURGER, "k", "digest-2"),
            lambda: orchestrator.start_once("cust_2", BURGER, "k", "digest-2"),  # answered by the one before
            lambda: orchestrator.start_once("cust_3", FRIES, "k", "digest-3"),  # refused: another body
            lambda: orchestrator.start_once("cust_0", BURGER, "old-key", "digest-0"),  # an earlier saga's key
        ],
    )

    plain, keyed, same_key, other_body, old_key = futures
    assert old_key.result() == before_key  # whatever happened to this batch, that saga exists
    written = stored_sagas(store)
    if fault == "written":
        assert written[plain.result()] == "cust_1" and written[keyed.result()] == "cust_2"
        assert same_key.result() == keyed.result()
        assert isinstance(other_body.exception(), IdempotencyKeyReused)
    elif fault == "lost":
        assert sorted(written.values()) == ["cust_0", "cust_first"]
        for future in (plain, keyed, same_key, other_body):
            error = future.exception()
            assert isinstance(error, StorageUnavailable) and not isinstance(error, CommitOutcomeUnknown)
    else:
        unknown = [future.exception() for future in (plain, keyed, same_key)]
        assert all(isinstance(error, CommitOutcomeUnknown) for error in unknown)
        plain_id, keyed_id, same_id = (error.saga_id for error in unknown if isinstance(error, CommitOutcomeUnknown))
        assert written[plain_id] == "cust_1" and written[keyed_id] == "cust_2"
        assert same_id == keyed_id  # the saga its key stands for: what a repeat with the key finds
        assert isinstance(other_body.exception(), StorageUnavailable)


def test_concurrent_posts_each_get_their_own_answer_over_http(gate: Gate, store: InMemoryStore) -> None:
    container = Container(settings=Settings(database_url="memory://", transport="memory"))
    container.memory_store.override(providers.Object(store))
    container.unit_of_work.override(providers.Factory(GatedUnitOfWork, container.memory_store, gate))
    client = TestClient(create_app(container), raise_server_exceptions=False)
    orchestrator = container.orchestrator()
    requests: list[tuple[dict[str, Any], dict[str, str]]] = [
        ({"customer_id": f"cust_{index}", "order_details": BURGER}, {}) for index in range(5)
    ]
    requests += [
        ({"customer_id": "cust_k", "order_details": BURGER}, {"Idempotency-Key": "k"}),
        ({"customer_id": "cust_k", "order_details": BURGER}, {"Idempotency-Key": "k"}),
        ({"customer_id": "cust_other", "order_details": BURGER}, {"Idempotency-Key": "k"}),
        ({"customer_id": "cust_bad", "order_details": {"foodItems": []}}, {}),
    ]
    with ThreadPoolExecutor(max_workers=len(requests) + 1) as pool:
        first = pool.submit(client.post, "/api/orders", json={"customer_id": "cust_first", "order_details": BURGER})
        assert gate.holding.wait(10)
        futures = []
        for body, headers in requests:
            futures.append(pool.submit(client.post, "/api/orders", json=body, headers=headers))
            if body["customer_id"] != "cust_bad":  # refused before it queues
                wait_until(lambda: orchestrator._starts.queued == len(futures))
        gate.release.set()
        responses = [future.result(10) for future in futures]
        assert first.result(10).status_code == 202

    assert [response.status_code for response in responses] == [202] * 7 + [422, 400]
    ids = [response.json()["saga_id"] for response in responses[:7]]
    assert len(set(ids[:5])) == 5 and ids[5] == ids[6] and ids[5] not in ids[:5]
    assert sorted(stored_sagas(store)[saga_id] for saga_id in set(ids)) == [f"cust_{i}" for i in range(5)] + ["cust_k"]
    assert gate.transactions == 2  # the first order's, and one for the orders that arrived meanwhile
    container.unit_of_work.reset_override()
    container.memory_store.reset_override()
