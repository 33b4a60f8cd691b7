"""`saga audit`: do the participants' records agree with the sagas? (docs/contract.md, "No orphan resources")

The ledger (`saga.ports.ledger`) lists the orders and payments the
participants hold; the sagas say which ones should be live. Each disagreement is
reported:

- a COMPLETED saga without exactly one live order (not CANCELLED) and one AUTHORIZED
  payment, or whose live ones are not those it recorded (`completed_mismatch`);
- a live order or AUTHORIZED payment of a saga that ended without completing
  (`live_after_failure`);
- a resource of a saga the database does not have (`unknown_resource`).

Not disagreements: a saga still moving (STARTED, COMPENSATING) or with clean-ups
pending is `in_flight`; a live resource the saga itself names as not undone (an
unconfirmed compensation or clean-up, for an operator) is `acknowledged`.

Sagas are read page by page through the persistence port and the ledger is read
once, row by row: memory holds a compact index of the ledger, never all sagas.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum

from saga.domain.saga import CreateOrderSaga, SagaStatus, UndoStatus
from saga.ports.ledger import LedgerRow, ResourceKind, ResourceStatus
from saga.ports.persistence import PageCursor, SagaResources, UnitOfWorkFactory

DEFAULT_PAGE_SIZE = 500


class FindingKind(StrEnum):
    COMPLETED_MISMATCH = "completed_mismatch"
    LIVE_AFTER_FAILURE = "live_after_failure"
    UNKNOWN_RESOURCE = "unknown_resource"
    IN_FLIGHT = "in_flight"
    ACKNOWLEDGED = "acknowledged"

    @property
    def is_disagreement(self) -> bool:
        return self in (FindingKind.COMPLETED_MISMATCH, FindingKind.LIVE_AFTER_FAILURE, FindingKind.UNKNOWN_RESOURCE)


@dataclass(frozen=True)
class Finding:
    kind: FindingKind
    saga_id: str
    detail: str
    resources: tuple[str, ...] = ()
    """`kind:id:status` of each ledger row concerned."""

    def to_dict(self) -> dict[str, object]:
        return {"kind": self.kind.value, "saga_id": self.saga_id, "detail": self.detail, "resources": self.resources}


@dataclass(frozen=True)
class AuditedSaga:
    """What the audit needs of a saga."""

    id: str
    status: SagaStatus
    order_id: str | None
    payment_id: str | None
    in_flight: bool
    """Still moving, or with a clean-up not yet settled: its resources may still change."""
    acknowledged: frozenset[str] = frozenset()
    """Ids of resources the saga names as left undone (for an operator)."""
    known_ids: frozenset[str] = frozenset()
    """Every resource id the saga knows of (its own and those it cleaned up)."""


@dataclass
class AuditReport:
    sagas: int = 0
    ledger_rows: int = 0
    findings: list[Finding] = field(default_factory=list)
    seconds: float = 0.0

    def count(self, kind: FindingKind) -> int:
        return sum(1 for finding in self.findings if finding.kind is kind)

    @property
    def disagreements(self) -> list[Finding]:
        return [finding for finding in self.findings if finding.kind.is_disagreement]

    @property
    def consistent(self) -> bool:
        return not self.disagreements

    def summary(self) -> str:
        return (
            f"audited {self.sagas} sagas against {self.ledger_rows} ledger rows in {self.seconds:.2f}s: "
            f"{len(self.disagreements)} disagreement(s), {self.count(FindingKind.IN_FLIGHT)} in flight, "
            f"{self.count(FindingKind.ACKNOWLEDGED)} acknowledged"
        )


def audited(saga: CreateOrderSaga | SagaResources) -> AuditedSaga:
    """The audit's view of a saga: the resources it holds, those it undid or must undo
    (its compensations and clean-ups), and those it names as left undone (unconfirmed)."""
    undone = {undo.resource_id for undo in saga.compensations if undo.resource_id is not None}
    known = {value for value in (saga.order_id, saga.payment_id) if value} | undone
    acknowledged = frozenset(
        undo.resource_id
        for undo in saga.compensations
        if undo.status is UndoStatus.UNCONFIRMED and undo.resource_id is not None
    )
    settling = any(undo.status in (UndoStatus.PENDING, UndoStatus.RUNNING) for undo in saga.compensations)
    return AuditedSaga(
        saga.id,
        saga.status,
        saga.order_id,
        saga.payment_id,
        in_flight=not saga.status.is_final or settling,
        acknowledged=acknowledged,
        known_ids=frozenset(known),
    )


def stored_sagas(uow_factory: UnitOfWorkFactory, page_size: int = DEFAULT_PAGE_SIZE) -> Iterator[AuditedSaga]:
    """Every saga in the store, newest first, one page per read-only unit of work."""
    cursor: PageCursor | None = None
    while True:
        with uow_factory(read_only=True) as uow:
            page = uow.sagas.resources_page(page_size, cursor)
        yield from (audited(saga) for saga in page.sagas)
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def _label(row: LedgerRow) -> str:
    return f"{row.kind}:{row.id}:{row.status}"


class _LedgerIndex:
    """The ledger grouped by saga; payments without a saga id wait under their order id."""

    def __init__(self, rows: Iterable[LedgerRow]) -> None:
        latest: dict[tuple[ResourceKind, str], LedgerRow] = {}
        count = 0
        for row in rows:
            count += 1
            latest.pop((row.kind, row.id), None)  # the last row of a resource wins, in its place
            latest[(row.kind, row.id)] = row
        self.rows = count
        saga_of_order = {row.id: row.saga_id for row in latest.values() if row.kind is ResourceKind.ORDER}
        self.by_saga: dict[str, list[LedgerRow]] = {}
        self.by_order: dict[str, list[LedgerRow]] = {}
        for row in latest.values():
            saga_id = row.saga_id or saga_of_order.get(row.order_id, "")
            if saga_id:
                self.by_saga.setdefault(saga_id, []).append(row)
            else:
                self.by_order.setdefault(row.order_id, []).append(row)

    def take(self, saga: AuditedSaga) -> list[LedgerRow]:
        rows = self.by_saga.pop(saga.id, [])
        for order_id in {saga.order_id, *saga.known_ids} - {None}:
            rows += self.by_order.pop(str(order_id), [])
        return rows

    def leftovers(self) -> Iterator[tuple[str, LedgerRow]]:
        for saga_id, rows in self.by_saga.items():
            for row in rows:
                yield saga_id, row
        for rows in self.by_order.values():
            for row in rows:
                yield "", row


def check_saga(saga: AuditedSaga, rows: list[LedgerRow]) -> list[Finding]:
    """The findings for one saga and its ledger rows."""
    live = [row for row in rows if row.live]
    if saga.in_flight:
        return [Finding(FindingKind.IN_FLIGHT, saga.id, f"{saga.status}, not settled", tuple(map(_label, rows)))]
    acknowledged = [row for row in live if row.id in saga.acknowledged]
    findings = [
        Finding(FindingKind.ACKNOWLEDGED, saga.id, f"{saga.status}: named as not undone", (_label(row),))
        for row in acknowledged
    ]
    unexplained = [row for row in live if row.id not in saga.acknowledged]
    if saga.status is SagaStatus.COMPLETED:
        orders = [row for row in unexplained if row.kind is ResourceKind.ORDER]
        payments = [row for row in unexplained if row.status is ResourceStatus.AUTHORIZED]
        problems = []
        if len(orders) != 1 or (saga.order_id is not None and orders[0].id != saga.order_id):
            problems.append(f"{len(orders)} live order(s), expected its order {saga.order_id}")
        if len(payments) != 1 or (saga.payment_id is not None and payments[0].id != saga.payment_id):
            problems.append(f"{len(payments)} authorized payment(s), expected its payment {saga.payment_id}")
        if problems:
            labels = tuple(map(_label, rows))
            findings.append(
                Finding(FindingKind.COMPLETED_MISMATCH, saga.id, "COMPLETED with " + "; ".join(problems), labels)
            )
    elif unexplained:
        findings.append(
            Finding(
                FindingKind.LIVE_AFTER_FAILURE,
                saga.id,
                f"{saga.status} but {len(unexplained)} resource(s) still live",
                tuple(map(_label, unexplained)),
            )
        )
    return findings


def audit(sagas: Iterable[AuditedSaga], ledger: Iterable[LedgerRow]) -> AuditReport:
    """Compares the sagas with the ledger. Raises BadLedgerRow from the ledger's reader."""
    started = time.perf_counter()
    index = _LedgerIndex(ledger)
    report = AuditReport(ledger_rows=index.rows)
    for saga in sagas:
        report.sagas += 1
        report.findings += check_saga(saga, index.take(saga))
    for saga_id, row in index.leftovers():
        detail = f"saga {saga_id} is not in the database" if saga_id else f"no saga holds order {row.order_id}"
        report.findings.append(Finding(FindingKind.UNKNOWN_RESOURCE, saga_id, detail, (_label(row),)))
    report.seconds = time.perf_counter() - started
    return report
