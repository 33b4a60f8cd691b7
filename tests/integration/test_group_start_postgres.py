"""Group commit of new sagas on a real PostgreSQL: concurrent orders share transactions,
and two processes racing on the same idempotency keys still make one saga per key
(docs/contract.md, "HTTP API", `Idempotency-Key`)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, event, select
from tests.unit.test_group_start import start_orders_at_once

from saga.adapters.clock import ManualClock
from saga.adapters.sql import SqlAlchemyUnitOfWork, create_engine_from_url
from saga.adapters.sql.migrations import upgrade
from saga.adapters.sql.schema import idempotency_keys, sagas
from saga.domain.policy import SagaPolicy
from saga.ports.persistence import UnitOfWork
from saga.service_layer.metrics import Metrics
from saga.service_layer.orchestrator import IdempotencyKeyReused, SagaOrchestrator

pytestmark = pytest.mark.postgres

BURGER = {"foodItems": [{"name": "Burger", "price": 12.99, "quantity": 1}]}


@pytest.fixture
def engine(fresh_database_url: str) -> Iterator[Engine]:
    upgrade(fresh_database_url)
    engine = create_engine_from_url(fresh_database_url, pool_size=10)
    yield engine
    engine.dispose()


def orchestrator_on(engine: Engine) -> SagaOrchestrator:
    """An orchestrator of its own, as another process would have, over the same database."""

    def uow_factory(read_only: bool = False) -> UnitOfWork:
        return SqlAlchemyUnitOfWork(engine, read_only)

    return SagaOrchestrator(uow_factory, ManualClock(), SagaPolicy(), Metrics())


def count_commits(engine: Engine) -> list[int]:
    commits = [0]

    @event.listens_for(engine, "commit")
    def count(connection: Any) -> None:
        commits[0] += 1
        time.sleep(0.002)  # a slower disk: others arrive while it commits

    return commits


def test_concurrent_orders_commit_in_fewer_transactions_than_orders_each_with_its_own_saga(engine: Engine) -> None:
    start_orders_at_once(orchestrator_on(engine), engine, count_commits(engine), 200)


def test_two_processes_racing_on_the_same_keys_make_one_saga_per_key(engine: Engine) -> None:
    # Each key is sent four times, to two orchestrators, with its own body once in a while
    # another body: every request with the key's body gets that key's one saga.
    first, second = orchestrator_on(engine), orchestrator_on(engine)
    keys = 60

    def request(index: int) -> tuple[int, str | None]:
        key = index % keys
        orchestrator = first if index % 2 else second
        body_of_key = index % 7 != 0
        customer = f"cust_{key}" if body_of_key else f"other_{key}"
        digest = f"digest-{key}" if body_of_key else f"other-{key}"
        try:
            return key, orchestrator.start_once(customer, BURGER, f"key-{key}", digest)
        except IdempotencyKeyReused:
            return key, None

    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(request, range(keys * 4)))

    with engine.connect() as connection:
        stored = dict(connection.execute(select(sagas.c.id, sagas.c.customer_id)).all())
        claimed = dict(connection.execute(select(idempotency_keys.c.key, idempotency_keys.c.saga_id)).all())
    assert len(stored) == len(claimed) == keys  # one saga per key, never two
    for key, saga_id in answers:
        if saga_id is not None:
            assert saga_id == claimed[f"key-{key}"]
    for key in range(keys):
        assert stored[claimed[f"key-{key}"]] in (f"cust_{key}", f"other_{key}")


def test_a_key_another_transaction_claims_meanwhile_splits_the_batch_and_its_request_gets_that_saga(
    engine: Engine,
) -> None:
    orchestrator = orchestrator_on(engine)
    holding, release = threading.Event(), threading.Event()

    @event.listens_for(engine, "commit")
    def hold_the_first(connection: Any) -> None:
        if not holding.is_set():
            holding.set()
            assert release.wait(10)

    other_saga = str(uuid.uuid4())
    with ThreadPoolExecutor(max_workers=4) as pool, engine.connect() as other_process:
        lead = pool.submit(orchestrator.start, "cust_0", BURGER)
        assert holding.wait(10)
        queued = [
            pool.submit(lambda: orchestrator.start("cust_1", BURGER).id),
            pool.submit(orchestrator.start_once, "cust_k", BURGER, "k", "digest-k"),
            pool.submit(lambda: orchestrator.start("cust_2", BURGER).id),
        ]
        deadline = time.monotonic() + 10
        while orchestrator._starts.queued < 3:
            assert time.monotonic() < deadline
            time.sleep(0.001)
        # Another process's transaction claims the key first, with the same body.
        record = {"key": "k", "request_digest": "digest-k", "saga_id": other_saga, "created_at": datetime.now(UTC)}
        other_process.execute(idempotency_keys.insert().values(record))
        release.set()  # the batch of three now waits for that claim
        time.sleep(0.3)
        other_process.commit()
        answers = [future.result(10) for future in queued]
        lead.result(10)

    assert answers[1] == other_saga
    with engine.connect() as connection:
        stored = dict(connection.execute(select(sagas.c.id, sagas.c.customer_id)).all())
    assert sorted(stored.values()) == ["cust_0", "cust_1", "cust_2"]
    assert stored[answers[0]] == "cust_1" and stored[answers[2]] == "cust_2"
    # The first order's, the batch of three that the claim broke, and each of the three alone.
    assert orchestrator._starts.batches == 5
