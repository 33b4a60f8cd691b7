"""A ledger of the participants' own records: the orders and payments they hold.

One row per resource, as the participants' databases know it, so it can be compared
with the sagas (`saga audit`, docs/contract.md "No orphan resources"):

    saga_id,kind,id,status,order_id

- `kind`: `order` or `payment`.
- `status`: `PENDING`, `CREATED` or `CANCELLED` for an order; `AUTHORIZED` or
  `REVERTED` for a payment. An exporter maps its service's own statuses to these.
- `saga_id` may be empty for a payment (the platform's payment service never sees
  the saga id); such a payment is joined to its saga through `order_id`.
- When a resource appears on several rows (a journal of changes), the last one wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from saga.domain.messages import JsonObject


class ResourceKind(StrEnum):
    ORDER = "order"
    PAYMENT = "payment"


class ResourceStatus(StrEnum):
    PENDING = "PENDING"
    CREATED = "CREATED"
    CANCELLED = "CANCELLED"
    AUTHORIZED = "AUTHORIZED"
    REVERTED = "REVERTED"


STATUSES_OF: dict[ResourceKind, frozenset[ResourceStatus]] = {
    ResourceKind.ORDER: frozenset({ResourceStatus.PENDING, ResourceStatus.CREATED, ResourceStatus.CANCELLED}),
    ResourceKind.PAYMENT: frozenset({ResourceStatus.AUTHORIZED, ResourceStatus.REVERTED}),
}
LEDGER_FIELDS = ("saga_id", "kind", "id", "status", "order_id")
_KINDS = {kind.value: kind for kind in ResourceKind}
_STATUSES = {status.value: status for status in ResourceStatus}


class BadLedgerRow(ValueError):
    """A ledger row that cannot be read; the message says which field and why."""


@dataclass(frozen=True)
class LedgerRow:
    saga_id: str
    """Empty when the participant does not know it (a payment); then joined by `order_id`."""
    kind: ResourceKind
    id: str
    status: ResourceStatus
    order_id: str
    """For a payment, the order it pays; for an order, its own id (or empty)."""

    @property
    def live(self) -> bool:
        """An order not cancelled, or a payment still authorized: something a failed saga must not leave."""
        return self.status in (ResourceStatus.PENDING, ResourceStatus.CREATED, ResourceStatus.AUTHORIZED)

    def to_dict(self) -> dict[str, str]:
        return {
            "saga_id": self.saga_id,
            "kind": self.kind.value,
            "id": self.id,
            "status": self.status.value,
            "order_id": self.order_id,
        }

    @classmethod
    def parse(cls, data: JsonObject) -> LedgerRow:
        """A row from a mapping with the ledger's keys (CSV or JSON). Raises BadLedgerRow."""
        values: dict[str, str] = {}
        for name in LEDGER_FIELDS:
            value = data.get(name)
            if value is None:
                value = ""
            if isinstance(value, int) and not isinstance(value, bool):
                value = str(value)  # an integer id, as some services use, is kept as its decimal text
            if not isinstance(value, str):
                raise BadLedgerRow(f"{name} must be a string, got {type(value).__name__}")
            values[name] = value.strip()
        kind = _KINDS.get(values["kind"].lower())
        if kind is None:
            raise BadLedgerRow(f"kind must be order or payment, got {values['kind'][:40]!r}")
        status = _STATUSES.get(values["status"].upper())
        if status is None:
            raise BadLedgerRow(f"status must be one of {', '.join(ResourceStatus)}, got {values['status'][:40]!r}")
        if status not in STATUSES_OF[kind]:
            raise BadLedgerRow(f"an {kind} cannot be {status}")
        if not values["id"]:
            raise BadLedgerRow("id must not be empty")
        if kind is ResourceKind.PAYMENT and not values["saga_id"] and not values["order_id"]:
            raise BadLedgerRow("a payment needs its saga_id or its order_id")
        if kind is ResourceKind.ORDER and not values["saga_id"]:
            raise BadLedgerRow("an order needs its saga_id")
        return cls(values["saga_id"], kind, values["id"], status, values["order_id"])
