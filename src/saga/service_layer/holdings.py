"""Which saga holds the resources a batch of events names, for the no-orphan rule.

A success reply naming a resource its saga does not hold is undone (docs/contract.md, "No
orphan resources"), but only a resource no other saga holds: an event naming another
saga's order or payment is not about this saga, and undoing or adopting that resource
would cancel or refund someone else's order. A batch asks the repository once, then
keeps the answer current as its own events make sagas hold new resources.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType

from saga.domain.messages import Event
from saga.domain.saga import CreateOrderSaga, ResourceRef, named_resource
from saga.ports.persistence import SagaRepository

NONE_ELSEWHERE: Mapping[ResourceRef, str] = MappingProxyType({})


class BatchHoldings:
    """The holder of each resource a batch's events name: as the unit of work read it
    before the batch, and as the batch's sagas came to hold resources since."""

    def __init__(
        self, repository: SagaRepository, events: Sequence[Event], sagas: Mapping[str, CreateOrderSaga]
    ) -> None:
        """Asks `repository` about the resources `events` name that their own saga (in
        `sagas`, by id) does not hold already: an event naming its saga's own resource is
        applied whoever else holds it, so only the others need asking (and, on PostgreSQL,
        locking)."""
        named: set[ResourceRef] = set()
        for event in events:
            ref, saga = named_resource(event), sagas.get(event.saga_id)
            if ref is not None and saga is not None and not saga.holds(ref):
                named.add(ref)
        self._holder: dict[ResourceRef, str] = repository.holders(named) if named else {}

    def elsewhere(self, saga: CreateOrderSaga, event: Event) -> Mapping[ResourceRef, str]:
        """For `saga.handle`: the resource `event` names, with its holder, when a saga other
        than `saga` holds it; empty otherwise."""
        ref = named_resource(event)
        holder = self._holder.get(ref) if ref is not None else None
        if ref is None or holder is None or holder == saga.id:
            return NONE_ELSEWHERE
        return {ref: holder}

    def applied(self, saga: CreateOrderSaga, event: Event) -> None:
        """Notes that `saga` has handled `event`: the resource it names, once the saga holds
        it, is held for the batch's later events of other sagas."""
        ref = named_resource(event)
        if ref is not None and ref not in self._holder and saga.holds(ref):
            self._holder[ref] = saga.id
