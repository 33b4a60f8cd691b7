"""An event naming another saga's order or payment undoes nothing and adopts nothing
(docs/contract.md, "No orphan resources").

The orchestrator asks the store which saga holds each resource a batch of events names,
and counts what the batch's own sagas come to hold on the way, so the answer is the same
whether the events arrive one at a time, in one batch, or in one batch with the holder.
The last test reproduces the attack as it was found, against the platform's services.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest
from sqlalchemy import Engine
from tests.unit.domain_helpers import (
    AMOUNT_CENTS,
    CURRENCY,
    CUSTOMER_ID,
    NOW,
    ORDER_DETAILS,
    PAYMENT_INFO,
    POLICY,
    event,
)

from saga.adapters.clock import ManualClock
from saga.adapters.memory_store import InMemoryStore, InMemoryUnitOfWork
from saga.adapters.sql import SqlAlchemyUnitOfWork, create_engine_from_url
from saga.adapters.sql.migrations import upgrade
from saga.domain.messages import Event
from saga.domain.saga import CreateOrderSaga, HistoryKind, SagaStatus, Step
from saga.ports.persistence import UnitOfWorkFactory
from saga.service_layer.metrics import Metrics
from saga.service_layer.orchestrator import EventOutcome, SagaOrchestrator
from saga.testing import SagaHarness

VICTIM = "00000000-0000-4000-8000-00000000000a"
OTHER = "00000000-0000-4000-8000-00000000000b"
HELD_ELSEWHERE = f"is held by saga {VICTIM}, not by this one"


@pytest.fixture(params=["memory", "sqlite"])
def uow_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[UnitOfWorkFactory]:
    if request.param == "memory":
        yield partial(InMemoryUnitOfWork, InMemoryStore())
        return
    url = f"sqlite:///{tmp_path / 'saga.db'}"
    upgrade(url)
    engine: Engine = create_engine_from_url(url)
    yield partial(SqlAlchemyUnitOfWork, engine)
    engine.dispose()


def orchestrator_over(uow_factory: UnitOfWorkFactory) -> SagaOrchestrator:
    """Sagas VICTIM and OTHER, started and waiting for create_order's reply."""
    with uow_factory() as uow:
        for saga_id in (VICTIM, OTHER):
            saga, commands = CreateOrderSaga.start(
                saga_id, CUSTOMER_ID, ORDER_DETAILS, AMOUNT_CENTS, CURRENCY, NOW, POLICY
            )
            uow.sagas.add(saga)
            uow.outbox.add(commands)
        uow.commit()
    return SagaOrchestrator(uow_factory, ManualClock(NOW), POLICY, Metrics())


def reply(saga_id: str, type_: str, **payload: object) -> Event:
    return event(type_, dict(payload), NOW, str(uuid.uuid4()), saga_id)


def completing(saga_id: str, order_id: str, payment_id: str) -> list[Event]:
    return [
        reply(saga_id, "order.created", order_id=order_id),
        reply(saga_id, "user.payment_info_retrieved", payment_info=PAYMENT_INFO),
        reply(saga_id, "payment.authorized", payment_id=payment_id),
        reply(saga_id, "order.status_updated", status="CREATED"),
        reply(saga_id, "timer.started"),
    ]


def unsent_of(uow_factory: UnitOfWorkFactory, saga_id: str) -> list[tuple[str, object]]:
    with uow_factory() as uow:  # not committed: nothing is marked sent
        entries = uow.outbox.claim_due(NOW.replace(year=NOW.year + 1), 1000)
    return [
        (entry.command.type, entry.command.payload.get("order_id"))
        for entry in entries
        if entry.command.saga_id == saga_id
    ]


def ignored_details(saga: CreateOrderSaga) -> list[str | None]:
    return [entry.detail for entry in saga.history if entry.kind is HistoryKind.IGNORED]


Apply = Callable[[SagaOrchestrator, list[Event]], list[EventOutcome]]
APPLY: dict[str, Apply] = {
    "one at a time": lambda orchestrator, events: [orchestrator.apply_event(e) for e in events],
    "in one batch": lambda orchestrator, events: orchestrator.apply_events(events),
}


@pytest.mark.parametrize("apply", list(APPLY))
def test_a_completed_sagas_order_and_payment_named_to_another_saga_are_left_alone(
    uow_factory: UnitOfWorkFactory, apply: str
) -> None:
    orchestrator = orchestrator_over(uow_factory)
    orchestrator.apply_events(completing(VICTIM, "o-victim", "p-victim"))
    orchestrator.apply_events(completing(OTHER, "o-other", "p-other"))
    before = unsent_of(uow_factory, OTHER)

    outcomes = APPLY[apply](
        orchestrator,
        [reply(OTHER, "order.created", order_id="o-victim"), reply(OTHER, "payment.authorized", payment_id="p-victim")],
    )

    assert outcomes == [EventOutcome.IGNORED, EventOutcome.IGNORED]
    other, victim = orchestrator.get(OTHER), orchestrator.get(VICTIM)
    assert other is not None and victim is not None
    assert other.status is SagaStatus.COMPLETED and other.cleanups == [] and other.compensations == []
    assert unsent_of(uow_factory, OTHER) == before  # no cancel_order, no revert_payment
    assert ignored_details(other) == [
        f"order_id o-victim {HELD_ELSEWHERE}",
        f"payment_id p-victim {HELD_ELSEWHERE}",
    ]
    assert victim.status is SagaStatus.COMPLETED and victim.compensations == []


@pytest.mark.parametrize("apply", list(APPLY))
def test_a_saga_creating_its_order_does_not_adopt_another_sagas_order(
    uow_factory: UnitOfWorkFactory, apply: str
) -> None:
    orchestrator = orchestrator_over(uow_factory)

    outcomes = APPLY[apply](
        orchestrator,
        [
            reply(VICTIM, "order.created", order_id="o-victim"),
            # Held by a saga of the same batch since the event before: it counts as held.
            reply(OTHER, "order.created", order_id="o-victim"),
            reply(OTHER, "order.created", order_id="o-other"),
        ],
    )

    assert outcomes == [EventOutcome.APPLIED, EventOutcome.IGNORED, EventOutcome.APPLIED]
    other = orchestrator.get(OTHER)
    assert other is not None and other.order_id == "o-other" and other.current_step is Step.GET_PAYMENT_INFO
    assert ignored_details(other) == [f"order_id o-victim {HELD_ELSEWHERE}"]


def test_a_resource_a_saga_holds_only_in_its_compensations_is_not_undone_by_another(
    uow_factory: UnitOfWorkFactory,
) -> None:
    orchestrator = orchestrator_over(uow_factory)
    orchestrator.apply_event(reply(VICTIM, "order.creation_failed", error="out of stock"))
    orchestrator.apply_events(completing(OTHER, "o-other", "p-other"))
    # A second order the victim's participant made is the victim's to clean up, and it does.
    orchestrator.apply_event(reply(VICTIM, "order.created", order_id="o-stray"))
    victim = orchestrator.get(VICTIM)
    assert victim is not None and [(u.resource_id, u.cleanup) for u in victim.compensations] == [("o-stray", True)]
    assert unsent_of(uow_factory, VICTIM)[-1] == ("cancel_order", "o-stray")
    before = unsent_of(uow_factory, OTHER)

    outcome = orchestrator.apply_event(reply(OTHER, "order.created", order_id="o-stray"))

    assert outcome is EventOutcome.IGNORED
    other = orchestrator.get(OTHER)
    assert other is not None and other.compensations == []
    assert unsent_of(uow_factory, OTHER) == before


def test_another_customers_completed_order_survives_an_event_naming_it_to_a_saga_of_ones_own() -> None:
    # Found by a hostile test: an order.created and a payment.authorized posted to one's own
    # saga, naming a completed saga's order and payment, cancelled and refunded that order.
    harness = SagaHarness(profile="platform")
    order = {"foodItems": [{"name": "Burger", "price": 12.99, "quantity": 1}], "deliveryLocation": "North Campus"}
    victim = harness.saga(harness.start_order("cust_victim", order))
    attacker = harness.saga(harness.start_order("cust_attacker", order))
    assert victim.status is SagaStatus.COMPLETED and attacker.status is SagaStatus.COMPLETED
    sent_before = len(harness.sent)

    for type_, payload in (
        ("order.created", {"order_id": victim.order_id}),
        ("payment.authorized", {"payment_id": victim.payment_id}),
    ):
        harness.deliver(
            {"type": type_, "correlation_id": attacker.id, "timestamp": "2026-12-08T01:00:00", "payload": payload}
        )

    assert harness.sent[sent_before:] == []  # neither cancel_order nor revert_payment went out
    assert harness.saga(attacker.id).cleanups == []
    assert len(ignored_details(harness.saga(attacker.id))) == 2
    report = harness.audit()
    assert report.consistent and report.findings == [] and report.sagas == 2
