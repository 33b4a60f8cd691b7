"""A batch of events applied in one unit of work does what applying them one at a time does.

`SagaOrchestrator.apply_events` is how a consumer poll (Kafka) or the in-memory queue
applies what arrived together: one transaction and one commit for the batch. These tests
run the same events through it and through `apply_event`, one at a time, on two fresh
stores of the same kind, and compare every outcome, every saga and the outbox.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path

import pytest
from sqlalchemy import Engine
from tests.unit.domain_helpers import (
    AMOUNT_CENTS,
    CURRENCY,
    CUSTOMER_ID,
    FAILURE,
    NOW,
    ORDER_DETAILS,
    POLICY,
    SUCCESS,
    event,
)

from saga.adapters.clock import ManualClock
from saga.adapters.memory_store import InMemoryStore, InMemoryUnitOfWork
from saga.adapters.sql import SqlAlchemyUnitOfWork, create_engine_from_url
from saga.adapters.sql.migrations import upgrade
from saga.domain.messages import Command, Event
from saga.domain.saga import CreateOrderSaga, SagaStatus, Step
from saga.ports.messaging import CommandPublisher, Delivered, SendResult
from saga.ports.persistence import StorageUnavailable, UnitOfWork, UnitOfWorkFactory
from saga.service_layer.metrics import Metrics
from saga.service_layer.orchestrator import EventOutcome, SagaOrchestrator
from saga.service_layer.relay import OutboxRelay

StoreMaker = Callable[[], UnitOfWorkFactory]

SAGAS = [f"00000000-0000-4000-8000-00000000000{n}" for n in range(1, 6)]
FAR_FUTURE = NOW.replace(year=NOW.year + 1)


@pytest.fixture(params=["memory", "sqlite"])
def new_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreMaker]:
    engines: list[Engine] = []

    def make() -> UnitOfWorkFactory:
        if request.param == "memory":
            return partial(InMemoryUnitOfWork, InMemoryStore())
        url = f"sqlite:///{tmp_path / f'saga-{len(engines)}.db'}"
        upgrade(url)
        engine = create_engine_from_url(url)
        engines.append(engine)
        return partial(SqlAlchemyUnitOfWork, engine)

    yield make
    for engine in engines:
        engine.dispose()


def orchestrator_over(uow_factory: UnitOfWorkFactory) -> SagaOrchestrator:
    """An orchestrator whose sagas SAGAS are started and wait for create_order's reply."""
    with uow_factory() as uow:
        for saga_id in SAGAS:
            saga, commands = CreateOrderSaga.start(
                saga_id, CUSTOMER_ID, ORDER_DETAILS, AMOUNT_CENTS, CURRENCY, NOW, POLICY
            )
            uow.sagas.add(saga)
            uow.outbox.add(commands)
        uow.commit()
    return SagaOrchestrator(uow_factory, ManualClock(NOW), POLICY, Metrics())


def success(saga: int, step: Step, message_id: str | None = None) -> Event:
    type_, payload = SUCCESS[step]
    # Each saga has its own order and payment: another saga's would be ignored.
    own = {name: f"{value}-{saga}" for name, value in payload.items() if name in ("order_id", "payment_id")}
    return event(type_, {**payload, **own}, NOW, message_id or str(uuid.uuid4()), SAGAS[saga])


def failure(saga: int, step: Step) -> Event:
    return event(FAILURE[step], {"error": "declined"}, NOW, str(uuid.uuid4()), SAGAS[saga])


def mixed_batch() -> list[Event]:
    """Events of every kind a poll can bring, several for one saga."""
    twice = str(uuid.uuid4())
    return [
        success(0, Step.CREATE_ORDER),
        success(0, Step.GET_PAYMENT_INFO),  # the same saga again, two steps in one batch
        success(1, Step.CREATE_ORDER, twice),
        success(1, Step.CREATE_ORDER, twice),  # the same message twice in the batch
        event("order.created", {"order_id": "o-9"}, NOW, str(uuid.uuid4()), str(uuid.uuid4())),  # no such saga
        success(2, Step.CREATE_ORDER),
        failure(2, Step.GET_PAYMENT_INFO),  # undoing begins after the batch decided a command
        success(3, Step.AUTHORIZE_PAYMENT),  # does not fit: it is still creating the order
        failure(4, Step.CREATE_ORDER),  # fails and ends FAILED within the batch
        event("order.created", {"order_id": "o-3"}, NOW, None, SAGAS[3]),  # no message_id: its state guards it
        success(1, Step.CREATE_ORDER, twice),  # and a third time
    ]


def state(uow_factory: UnitOfWorkFactory, saga_id: str) -> tuple[object, ...]:
    with uow_factory() as uow:
        saga = uow.sagas.get(saga_id)
    assert saga is not None
    return (
        saga.status,
        saga.current_step,
        saga.order_id,
        saga.payment_info,
        saga.error,
        saga.ignored_events,
        [(undo.command_type, undo.status) for undo in saga.compensations],
        [(entry.kind, entry.type, entry.detail) for entry in saga.history],
        None if saga.awaiting is None else saga.awaiting.command_type,
    )


def unsent(uow_factory: UnitOfWorkFactory) -> dict[str, list[str]]:
    """Each saga's unsent commands, in the order they were added."""
    by_saga: dict[str, list[str]] = {}
    with uow_factory() as uow:
        for entry in uow.outbox.claim_due(FAR_FUTURE, 1000):  # not committed: nothing is marked sent
            by_saga.setdefault(entry.command.saga_id, []).append(entry.command.type)
    return by_saga


def test_a_batch_ends_where_one_event_at_a_time_ends(new_store: StoreMaker) -> None:
    events = mixed_batch()
    one_at_a_time, batched = new_store(), new_store()

    sequential = orchestrator_over(one_at_a_time)
    alone = [sequential.apply_event(e) for e in events]
    together = orchestrator_over(batched).apply_events(events)

    assert together == alone
    assert together == [
        EventOutcome.APPLIED,
        EventOutcome.APPLIED,
        EventOutcome.APPLIED,
        EventOutcome.DUPLICATE,
        EventOutcome.UNKNOWN_SAGA,
        EventOutcome.APPLIED,
        EventOutcome.APPLIED,
        EventOutcome.IGNORED,
        EventOutcome.APPLIED,
        EventOutcome.APPLIED,
        EventOutcome.DUPLICATE,
    ]
    for saga_id in SAGAS:
        assert state(batched, saga_id) == state(one_at_a_time, saga_id), saga_id
    assert unsent(batched) == unsent(one_at_a_time)
    # Nothing was relayed: every command decided is still unsent, but what undoing withdrew.
    assert unsent(batched)[SAGAS[0]] == ["create_order", "get_payment_info", "authorize_payment"]
    assert unsent(batched)[SAGAS[2]] == ["cancel_order"]


def counting_commits(uow_factory: UnitOfWorkFactory, commits: list[int]) -> UnitOfWorkFactory:
    """`uow_factory`, each commit of its units of work noted in `commits`."""

    def counting(read_only: bool = False) -> UnitOfWork:
        uow = uow_factory(read_only)
        commit = uow.commit

        def counted() -> None:
            commit()
            commits.append(1)

        uow.commit = counted  # type: ignore[method-assign]
        return uow

    return counting


def test_a_batch_is_one_commit(new_store: StoreMaker) -> None:
    uow_factory = new_store()
    orchestrator = orchestrator_over(uow_factory)
    commits: list[int] = []
    orchestrator._uow_factory = counting_commits(uow_factory, commits)
    outcomes = orchestrator.apply_events(mixed_batch())

    assert len(outcomes) == len(mixed_batch())
    assert len(commits) == 1


def test_a_batch_that_raises_writes_nothing_and_its_events_apply_one_at_a_time(new_store: StoreMaker) -> None:
    uow_factory = new_store()
    orchestrator = orchestrator_over(uow_factory)
    events = [success(0, Step.CREATE_ORDER), success(1, Step.CREATE_ORDER)]
    poison = event("order.created", {"order_id": "o-1"}, NOW, str(uuid.uuid4()), SAGAS[2])
    original = CreateOrderSaga.handle

    def handle(saga: CreateOrderSaga, e: Event, *args: object, **kwargs: object) -> object:
        if e is poison:
            raise RuntimeError("a bug that only this event meets")
        return original(saga, e, *args, **kwargs)  # type: ignore[arg-type]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(CreateOrderSaga, "handle", handle)
        with pytest.raises(RuntimeError):
            orchestrator.apply_events([*events, poison])
        assert all(orchestrator.get(saga_id).status is SagaStatus.STARTED for saga_id in SAGAS)  # type: ignore[union-attr]
        assert unsent(uow_factory).keys() == set(SAGAS)
        assert all(commands == ["create_order"] for commands in unsent(uow_factory).values())

        assert orchestrator.apply_events(events) == [EventOutcome.APPLIED, EventOutcome.APPLIED]
    assert orchestrator.get(SAGAS[0]).current_step is Step.GET_PAYMENT_INFO  # type: ignore[union-attr]


def test_a_batch_whose_commit_fails_writes_nothing(new_store: StoreMaker) -> None:
    uow_factory = new_store()
    orchestrator = orchestrator_over(uow_factory)

    def failing(read_only: bool = False) -> UnitOfWork:
        uow = uow_factory(read_only)

        def refuse() -> None:
            raise StorageUnavailable("the database went away")

        uow.commit = refuse  # type: ignore[method-assign]
        return uow

    orchestrator._uow_factory = failing
    with pytest.raises(StorageUnavailable):
        orchestrator.apply_events(mixed_batch())
    orchestrator._uow_factory = uow_factory

    assert [orchestrator.get(saga_id).current_step for saga_id in SAGAS] == [Step.CREATE_ORDER] * len(SAGAS)  # type: ignore[union-attr]
    # Applied again after the outage, the same batch ends as if nothing had happened before.
    again = orchestrator.apply_events(mixed_batch())
    assert again.count(EventOutcome.DUPLICATE) == 2


class AnsweringAtOnce(CommandPublisher):
    """A participant that answers every create_order in its HTTP response, as a 200 does."""

    def publish(self, commands: Sequence[Command]) -> list[SendResult]:
        return [Delivered(success(SAGAS.index(command.saga_id), Step.CREATE_ORDER)) for command in commands]

    def healthy(self) -> str | None:
        return None


def test_the_replies_a_relayed_batch_brought_back_are_applied_in_one_commit(new_store: StoreMaker) -> None:
    uow_factory = new_store()
    orchestrator = orchestrator_over(uow_factory)
    commits: list[int] = []
    orchestrator._uow_factory = counting_commits(uow_factory, commits)
    relay = OutboxRelay(orchestrator._uow_factory, AnsweringAtOnce(), orchestrator, ManualClock(NOW), Metrics())

    assert relay.send_due() == len(SAGAS)

    assert len(commits) == 2  # the relay's claim, then the five replies together
    assert all(orchestrator.get(saga_id).current_step is Step.GET_PAYMENT_INFO for saga_id in SAGAS)  # type: ignore[union-attr]
