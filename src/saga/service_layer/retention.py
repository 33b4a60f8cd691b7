"""Retention: sent outbox entries and consumed message ids are kept for a while, then deleted.

Without it both tables only grow. A message id is kept long enough to outlast any
redelivery a broker would make; one that comes back later still changes nothing,
because it no longer fits its saga's state.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from saga.ports.clock import Clock
from saga.ports.persistence import UnitOfWorkFactory
from saga.service_layer.metrics import Metrics
from saga.service_layer.orchestrator import IDEMPOTENCY_KEY_TTL

log = logging.getLogger(__name__)


class Retention:
    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        clock: Clock,
        metrics: Metrics,
        outbox_retention: timedelta = timedelta(hours=24),
        inbox_retention: timedelta = timedelta(days=7),
        batch_size: int = 1000,
    ) -> None:
        self._uow_factory = uow_factory
        self._clock = clock
        self._metrics = metrics
        self._outbox_retention = outbox_retention
        self._inbox_retention = inbox_retention
        self._batch_size = batch_size

    def prune(self) -> tuple[int, int]:
        """Deletes what is past retention, a batch per transaction; returns (outbox, inbox) counts."""
        now = self._clock.now()
        outbox = inbox = 0
        while True:
            # Small transactions: pruning never holds locks that live traffic waits on for long.
            with self._uow_factory() as uow:
                removed_outbox = uow.outbox.purge_sent(now - self._outbox_retention, self._batch_size)
                removed_inbox = uow.inbox.purge(now - self._inbox_retention, self._batch_size)
                uow.commit()
            outbox += removed_outbox
            inbox += removed_inbox
            if removed_outbox < self._batch_size and removed_inbox < self._batch_size:
                break
        self._prune_idempotency_keys(now)
        if outbox or inbox:
            self._metrics.count("outbox_purged", outbox)
            self._metrics.count("inbox_purged", inbox)
            log.info("retention: %d sent outbox entries and %d message ids deleted", outbox, inbox)
        return outbox, inbox

    def _prune_idempotency_keys(self, now: datetime) -> None:
        """Deletes idempotency keys past their 24 hours (docs/contract.md, "HTTP API")."""
        removed = self._batch_size
        while removed == self._batch_size:
            with self._uow_factory() as uow:
                removed = uow.idempotency_keys.purge(now - IDEMPOTENCY_KEY_TTL, self._batch_size)
                uow.commit()
            if removed:
                self._metrics.count("idempotency_keys_purged", removed)
