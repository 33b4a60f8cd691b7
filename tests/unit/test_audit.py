"""`saga audit`'s rules, one small ledger each, and the ledger readers."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from saga.adapters.ledger_files import LedgerUnreadable, read_ledger
from saga.adapters.memory_store import InMemoryStore, InMemoryUnitOfWork
from saga.domain.policy import SagaPolicy
from saga.domain.saga import CreateOrderSaga, SagaStatus
from saga.ports.ledger import LedgerRow, ResourceKind, ResourceStatus
from saga.ports.persistence import UnitOfWork
from saga.service_layer.audit import AuditedSaga, FindingKind, audit, stored_sagas

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
ORDER, PAYMENT = ResourceKind.ORDER, ResourceKind.PAYMENT
S = ResourceStatus


def saga(
    status: SagaStatus,
    order_id: str | None = "o1",
    payment_id: str | None = "p1",
    saga_id: str = "s1",
    acknowledged: frozenset[str] = frozenset(),
) -> AuditedSaga:
    known = frozenset(value for value in (order_id, payment_id) if value)
    in_flight = not status.is_final
    return AuditedSaga(saga_id, status, order_id, payment_id, in_flight, acknowledged, known)


def row(
    kind: ResourceKind, resource_id: str, status: ResourceStatus, saga_id: str = "s1", order_id: str = "o1"
) -> LedgerRow:
    return LedgerRow(saga_id, kind, resource_id, status, order_id)


def kinds(sagas: Iterable[AuditedSaga], rows: list[LedgerRow]) -> list[FindingKind]:
    return [finding.kind for finding in audit(sagas, rows).findings]


def test_a_completed_saga_with_its_live_order_and_authorized_payment_is_consistent() -> None:
    for order_status in (S.PENDING, S.CREATED):
        report = audit([saga(SagaStatus.COMPLETED)], [row(ORDER, "o1", order_status), row(PAYMENT, "p1", S.AUTHORIZED)])
        assert report.consistent and report.findings == [] and report.sagas == 1 and report.ledger_rows == 2


@pytest.mark.parametrize(
    "rows",
    [
        [row(PAYMENT, "p1", S.AUTHORIZED)],  # no order
        [row(ORDER, "o1", S.CANCELLED), row(PAYMENT, "p1", S.AUTHORIZED)],  # its order cancelled
        [row(ORDER, "o1", S.CREATED)],  # no payment
        [row(ORDER, "o1", S.CREATED), row(PAYMENT, "p1", S.REVERTED)],  # its payment reverted
        [row(ORDER, "o1", S.CREATED), row(ORDER, "o2", S.PENDING), row(PAYMENT, "p1", S.AUTHORIZED)],  # a second order
        [row(ORDER, "o1", S.CREATED), row(PAYMENT, "p1", S.AUTHORIZED), row(PAYMENT, "p2", S.AUTHORIZED)],
        [row(ORDER, "o9", S.CREATED), row(PAYMENT, "p1", S.AUTHORIZED)],  # the live order is not its own
    ],
)
def test_a_completed_saga_needs_exactly_its_one_live_order_and_one_authorized_payment(rows: list[LedgerRow]) -> None:
    report = audit([saga(SagaStatus.COMPLETED)], rows)
    assert [finding.kind for finding in report.findings] == [FindingKind.COMPLETED_MISMATCH]
    assert not report.consistent and "COMPLETED with" in report.findings[0].detail


@pytest.mark.parametrize("status", [SagaStatus.FAILED, SagaStatus.CANCELLED, SagaStatus.COMPENSATION_FAILED])
def test_a_saga_that_did_not_complete_must_leave_nothing_live(status: SagaStatus) -> None:
    undone = [row(ORDER, "o1", S.CANCELLED), row(PAYMENT, "p1", S.REVERTED)]
    assert kinds([saga(status, acknowledged=frozenset())], undone) == []
    live = [row(ORDER, "o1", S.PENDING), row(PAYMENT, "p1", S.REVERTED), row(ORDER, "o2", S.PENDING)]
    report = audit([saga(status, acknowledged=frozenset())], live)
    [finding] = report.findings
    assert finding.kind is FindingKind.LIVE_AFTER_FAILURE
    assert finding.resources == ("order:o1:PENDING", "order:o2:PENDING")


def test_a_live_resource_the_saga_names_as_not_undone_is_acknowledged_not_a_disagreement() -> None:
    report = audit(
        [saga(SagaStatus.COMPENSATION_FAILED, acknowledged=frozenset({"p1"}))],
        [row(ORDER, "o1", S.CANCELLED), row(PAYMENT, "p1", S.AUTHORIZED)],
    )
    assert [finding.kind for finding in report.findings] == [FindingKind.ACKNOWLEDGED]
    assert report.consistent


@pytest.mark.parametrize("status", [SagaStatus.STARTED, SagaStatus.COMPENSATING])
def test_a_saga_still_moving_is_in_flight_whatever_the_ledger_says(status: SagaStatus) -> None:
    report = audit([saga(status)], [row(ORDER, "o1", S.PENDING), row(ORDER, "o2", S.PENDING)])
    assert [finding.kind for finding in report.findings] == [FindingKind.IN_FLIGHT]
    assert report.consistent


def test_a_resource_no_saga_knows_is_a_disagreement() -> None:
    rows = [
        row(ORDER, "o1", S.CREATED),
        row(PAYMENT, "p1", S.AUTHORIZED),
        row(ORDER, "o7", S.PENDING, saga_id="s7", order_id="o7"),
        row(PAYMENT, "p8", S.AUTHORIZED, saga_id="", order_id="o8"),
    ]
    report = audit([saga(SagaStatus.COMPLETED)], rows)
    assert [(finding.kind, finding.saga_id) for finding in report.findings] == [
        (FindingKind.UNKNOWN_RESOURCE, "s7"),
        (FindingKind.UNKNOWN_RESOURCE, ""),
    ]
    assert "no saga holds order o8" in report.findings[1].detail


def test_a_payment_without_saga_id_is_joined_through_its_order() -> None:
    via_ledger_order = [row(ORDER, "o1", S.CREATED), row(PAYMENT, "p1", S.AUTHORIZED, saga_id="")]
    assert audit([saga(SagaStatus.COMPLETED)], via_ledger_order).findings == []
    via_saga_order = [
        row(ORDER, "o1", S.CREATED, saga_id="s1"),
        row(PAYMENT, "p1", S.AUTHORIZED, saga_id="", order_id="o1"),
    ]
    assert audit([saga(SagaStatus.COMPLETED)], via_saga_order[1:] + via_saga_order[:1]).findings == []
    orphan = [row(ORDER, "o1", S.CANCELLED), row(PAYMENT, "p1", S.AUTHORIZED, saga_id="")]
    assert kinds([saga(SagaStatus.FAILED)], orphan) == [FindingKind.LIVE_AFTER_FAILURE]


def test_the_last_row_of_a_resource_wins() -> None:
    journal = [row(ORDER, "o1", S.PENDING), row(PAYMENT, "p1", S.AUTHORIZED), row(ORDER, "o1", S.CANCELLED)]
    assert kinds([saga(SagaStatus.FAILED)], journal) == [FindingKind.LIVE_AFTER_FAILURE]
    assert kinds([saga(SagaStatus.FAILED)], [*journal, row(PAYMENT, "p1", S.REVERTED)]) == []


def stored(store: InMemoryStore, status: SagaStatus, created_at: datetime) -> CreateOrderSaga:
    saga, _ = CreateOrderSaga.start(str(uuid.uuid4()), "cust_1", {}, 100, "USD", created_at, SagaPolicy())
    saga.status = status
    saga.order_id = f"o-{saga.id}"
    uow: UnitOfWork
    with InMemoryUnitOfWork(store) as uow:
        uow.sagas.add(saga)
        uow.commit()
    return saga


def test_sagas_are_read_page_by_page_through_the_persistence_port() -> None:
    store = InMemoryStore()
    sagas = [stored(store, SagaStatus.FAILED, T0 + timedelta(seconds=i)) for i in range(7)]
    pages: list[bool] = []

    def factory(read_only: bool = False) -> UnitOfWork:
        pages.append(read_only)
        return InMemoryUnitOfWork(store, read_only=read_only)

    read = list(stored_sagas(factory, page_size=3))
    assert [item.id for item in read] == [saga.id for saga in reversed(sagas)]
    assert pages == [True, True, True]
    assert all(item.order_id == f"o-{item.id}" and not item.in_flight for item in read)
    ledger = [LedgerRow(sagas[0].id, ORDER, f"o-{sagas[0].id}", S.PENDING, "")]
    assert kinds(stored_sagas(factory, page_size=3), ledger) == [FindingKind.LIVE_AFTER_FAILURE]


def test_csv_and_json_lines_ledgers_are_read_row_by_row(tmp_path: Path) -> None:
    csv_path = tmp_path / "export.csv"
    csv_path.write_text("saga_id,kind,id,status,order_id,extra\ns1,order,o1,created,o1,x\n,PAYMENT,7,AUTHORIZED,o1,y\n")
    assert list(read_ledger(str(csv_path))) == [
        row(ORDER, "o1", S.CREATED),
        row(PAYMENT, "7", S.AUTHORIZED, saga_id=""),
    ]
    jsonl_path = tmp_path / "ledger.jsonl"
    jsonl_path.write_text(
        json.dumps(row(ORDER, "o1", S.PENDING).to_dict())
        + "\n\n"
        + '{"saga_id": "", "kind": "payment", "id": 8, "status": "REVERTED", "order_id": "o1"}\n'
    )
    assert list(read_ledger(str(jsonl_path))) == [
        row(ORDER, "o1", S.PENDING),
        row(PAYMENT, "8", S.REVERTED, saga_id=""),
    ]


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        ("a.csv", "saga_id,kind,id\ns1,order,o1\n", "header must name"),
        (
            "a.csv",
            "saga_id,kind,id,status,order_id\ns1,invoice,o1,CREATED,o1\n",
            "line 2: kind must be order or payment",
        ),
        ("a.csv", "saga_id,kind,id,status,order_id\ns1,order,o1,AUTHORIZED,o1\n", "an order cannot be AUTHORIZED"),
        ("a.csv", "saga_id,kind,id,status,order_id\ns1,order,o1,SHIPPED,o1\n", "status must be one of"),
        ("a.csv", "saga_id,kind,id,status,order_id\n,payment,p1,AUTHORIZED,\n", "saga_id or its order_id"),
        (
            "a.jsonl",
            '{"saga_id": "s1", "kind": "order", "id": "", "status": "PENDING"}\n',
            "line 1: id must not be empty",
        ),
        ("a.jsonl", "[1, 2]\n", "line 1: not a JSON object"),
        ("a.jsonl", "{not json\n", "line 1: not a JSON object"),
    ],
)
def test_a_bad_ledger_is_refused_saying_where(tmp_path: Path, name: str, text: str, problem: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(LedgerUnreadable, match=problem):
        list(read_ledger(str(path)))


def test_a_missing_ledger_is_unreadable(tmp_path: Path) -> None:
    with pytest.raises(LedgerUnreadable, match="cannot read"):
        list(read_ledger(str(tmp_path / "nothing.csv")))
