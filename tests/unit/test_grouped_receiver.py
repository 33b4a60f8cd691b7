"""Events posted at the same time (POST /api/events) are applied as one batch, and each
request still gets its own answer (docs/contract.md, "HTTP API": 202, 400, 404, 503)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import pytest
from dependency_injector import providers
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.testclient import TestClient

from saga.adapters.clock import ManualClock
from saga.adapters.envelope import decode_event
from saga.adapters.memory_store import InMemoryStore, InMemoryUnitOfWork
from saga.domain.messages import Event
from saga.domain.policy import SagaPolicy
from saga.entrypoints.config import Settings
from saga.entrypoints.container import Container
from saga.entrypoints.http_api import create_app
from saga.ports.persistence import StorageUnavailable, UnitOfWork
from saga.service_layer.metrics import Metrics
from saga.service_layer.orchestrator import EventOutcome, SagaOrchestrator
from saga.service_layer.receiver import EventReceiver, GroupedReceiver, Receipt
from saga.service_layer.tracing import Tracing

BURGER = {"foodItems": [{"name": "Burger", "price": 12.99, "quantity": 1}]}


class Gate:
    """Counts commits; holds one while `hold` is set, until `release`; `lose` makes the next
    commit after that roll back and break the connection."""

    def __init__(self) -> None:
        self.hold = False
        self.holding = threading.Event()
        self.release = threading.Event()
        self.lose = 0
        self.commits = 0


class GatedUnitOfWork(InMemoryUnitOfWork):
    def __init__(self, store: InMemoryStore, gate: Gate, read_only: bool = False) -> None:
        super().__init__(store, read_only)
        self._gate = gate

    def commit(self) -> None:
        gate = self._gate
        gate.commits += 1
        if gate.hold:
            gate.hold = False
            gate.holding.set()
            assert gate.release.wait(10)
        elif gate.lose:
            gate.lose -= 1
            self.rollback()
            raise StorageUnavailable("OperationalError: server closed the connection unexpectedly")
        super().commit()


def order_created(saga_id: str, message_id: str) -> bytes:
    return json.dumps(
        {
            "type": "order.created",
            "correlation_id": saga_id,
            "timestamp": "2026-12-08T12:00:00+00:00",
            "payload": {"order_id": f"order-of-{saga_id}"},
            "message_id": message_id,
        }
    ).encode()


def decode_or_fail(raw: bytes | str) -> Event:
    """The envelope codec, except that a message saying `boom` makes applying it fail unexpectedly."""
    if raw == b"boom":
        raise RuntimeError("the codec broke on this message")
    return decode_event(raw)


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


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

    return SagaOrchestrator(uow_factory, ManualClock(), SagaPolicy(), Metrics())


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=16) as pool:
        yield pool


def one_batch(
    grouped: GroupedReceiver, gate: Gate, pool: ThreadPoolExecutor, first: bytes, messages: list[bytes]
) -> list[Future[Receipt]]:
    """`first` is being applied (its commit held) while `messages` arrive, one request each;
    then they are applied together. Returns their futures, in order."""
    gate.hold = True
    pool.submit(grouped.receive, first, "POST /api/events")
    assert gate.holding.wait(10)
    futures = []
    for raw in messages:
        futures.append(pool.submit(grouped.receive, raw, "POST /api/events"))
        wait_until(lambda: grouped._group.queued == len(futures))
    gate.release.set()
    for future in futures:
        future.exception(10)
    return futures


def test_events_posted_together_are_applied_in_one_transaction_each_with_its_own_receipt(
    orchestrator: SagaOrchestrator, gate: Gate, pool: ThreadPoolExecutor
) -> None:
    sagas = [orchestrator.start(f"cust_{index}", BURGER).id for index in range(4)]
    grouped = GroupedReceiver(EventReceiver(orchestrator, Metrics(), decode_event))
    gate.commits = 0

    futures = one_batch(
        grouped,
        gate,
        pool,
        order_created(sagas[0], "m-0"),
        [
            order_created(sagas[1], "m-1"),
            b"not json",
            order_created("00000000-0000-4000-8000-000000000000", "m-x"),
            order_created(sagas[2], "m-2"),
            order_created(sagas[1], "m-1"),  # the same message again, in the same batch
            order_created(sagas[3], "m-3"),
        ],
    )

    receipts = [future.result() for future in futures]
    assert [receipt.outcome for receipt in receipts] == [
        EventOutcome.APPLIED,
        None,
        EventOutcome.UNKNOWN_SAGA,
        EventOutcome.APPLIED,
        EventOutcome.DUPLICATE,
        EventOutcome.APPLIED,
    ]
    assert (
        receipts[1].problem is not None and receipts[2].problem == f"no saga {'00000000-0000-4000-8000-000000000000'}"
    )
    assert gate.commits == 2  # the first event's, and one for the six that arrived meanwhile
    for saga_id in sagas:
        saga = orchestrator.get(saga_id)
        assert saga is not None and saga.order_id == f"order-of-{saga_id}"


def test_a_message_whose_application_fails_unexpectedly_fails_its_own_request_only(
    orchestrator: SagaOrchestrator, gate: Gate, pool: ThreadPoolExecutor
) -> None:
    sagas = [orchestrator.start(f"cust_{index}", BURGER).id for index in range(3)]
    grouped = GroupedReceiver(EventReceiver(orchestrator, Metrics(), decode_or_fail))

    futures = one_batch(
        grouped,
        gate,
        pool,
        order_created(sagas[0], "m-0"),
        [order_created(sagas[1], "m-1"), b"boom", order_created(sagas[2], "m-2")],
    )

    assert isinstance(futures[1].exception(), RuntimeError)
    assert str(futures[1].exception()) == "the codec broke on this message"
    assert [futures[index].result().outcome for index in (0, 2)] == [EventOutcome.APPLIED] * 2
    assert grouped._group.batches == 1 + 1 + 3  # the first, the broken batch, each of its three alone


def test_when_the_database_fails_the_batch_every_request_of_it_is_told_and_nothing_was_applied(
    orchestrator: SagaOrchestrator, gate: Gate, pool: ThreadPoolExecutor
) -> None:
    sagas = [orchestrator.start(f"cust_{index}", BURGER).id for index in range(3)]
    grouped = GroupedReceiver(EventReceiver(orchestrator, Metrics(), decode_event))
    gate.lose = 1  # the batch's commit, after the held first one

    futures = one_batch(
        grouped,
        gate,
        pool,
        order_created(sagas[0], "m-0"),
        [order_created(sagas[1], "m-1"), order_created(sagas[2], "m-2")],
    )

    assert all(isinstance(future.exception(), StorageUnavailable) for future in futures)
    assert grouped._group.batches == 2  # not written again one by one: the database failed, not a message
    for saga_id in sagas[1:]:
        saga = orchestrator.get(saga_id)
        assert saga is not None and saga.order_id is None


def test_events_posted_at_once_over_http_are_answered_each_by_its_own_status(gate: Gate, store: InMemoryStore) -> None:
    container = Container(settings=Settings(database_url="memory://", transport="memory"))
    container.memory_store.override(providers.Object(store))
    container.unit_of_work.override(providers.Factory(GatedUnitOfWork, container.memory_store, gate))
    client = TestClient(create_app(container), raise_server_exceptions=False)
    orchestrator = container.orchestrator()
    sagas = [orchestrator.start(f"cust_{index}", BURGER).id for index in range(6)]
    headers = {"Content-Type": "application/json"}
    bodies = [order_created(saga_id, f"m-{index}") for index, saga_id in enumerate(sagas)]
    bodies += [b"[]", order_created("00000000-0000-4000-8000-000000000000", "m-x")]

    with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        futures = [pool.submit(client.post, "/api/events", content=body, headers=headers) for body in bodies]
        responses = [future.result(10) for future in futures]

    assert [response.status_code for response in responses] == [202] * 6 + [400, 404]
    assert [response.json().get("outcome") for response in responses[:6]] == ["applied"] * 6
    for saga_id in sagas:
        saga = orchestrator.get(saga_id)
        assert saga is not None and saga.order_id == f"order-of-{saga_id}"
    container.unit_of_work.reset_override()
    container.memory_store.reset_override()


def test_an_event_posted_with_a_traceparent_of_its_own_is_linked_to_the_span_that_applies_it() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    container = Container(settings=Settings(database_url="memory://", transport="memory"))
    container.tracing.override(providers.Object(Tracing(provider)))
    client = TestClient(create_app(container), raise_server_exceptions=False)
    saga_id = container.orchestrator().start("cust_1", BURGER).id
    foreign_trace = uuid.uuid4().int

    response = client.post(
        "/api/events",
        content=order_created(saga_id, "m-1"),
        headers={"Content-Type": "application/json", "traceparent": f"00-{foreign_trace:032x}-{0xABC:016x}-01"},
    )

    assert response.status_code == 202
    applied = [span for span in exporter.get_finished_spans() if span.name == "saga.apply_event"]
    assert len(applied) == 1 and applied[0].context is not None
    assert applied[0].context.trace_id == uuid.UUID(saga_id).int  # the saga's own trace
    assert [link.context.trace_id for link in applied[0].links] == [foreign_trace]
    container.tracing.reset_override()
