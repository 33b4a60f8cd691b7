"""The outbox relay: hands committed commands to the transport and marks them sent.

Entries are claimed with a lease, so several relays (processes or threads) share
the outbox without sending an entry twice in the normal case, and an entry whose
relay died comes back when its lease ends. Delivery is at least once: a crash
after sending and before marking sent sends the entry again, with the same
message_id, which participants deduplicate.
"""

from __future__ import annotations

import logging
import random
from datetime import timedelta

from saga.domain.messages import Event
from saga.ports.clock import Clock
from saga.ports.messaging import CommandPublisher, Delivered, Rejected, Undelivered
from saga.ports.persistence import UnitOfWorkFactory
from saga.service_layer.metrics import Metrics
from saga.service_layer.orchestrator import SagaOrchestrator

log = logging.getLogger(__name__)


class OutboxRelay:
    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        publisher: CommandPublisher,
        orchestrator: SagaOrchestrator,
        clock: Clock,
        metrics: Metrics,
        batch_size: int = 100,
        lease: timedelta = timedelta(seconds=30),
        retry_base: timedelta = timedelta(milliseconds=200),
        retry_max: timedelta = timedelta(seconds=30),
        give_up_after: timedelta = timedelta(seconds=30),
    ) -> None:
        self._uow_factory = uow_factory
        self._publisher = publisher
        self._orchestrator = orchestrator
        self._clock = clock
        self._metrics = metrics
        self._batch_size = batch_size
        self._lease = lease
        self._retry_base = retry_base
        self._retry_max = retry_max
        self._give_up_after = give_up_after
        """Past this age an undelivered command is dropped: by then the saga's deadline has
        queued its re-send (same message_id) or moved on, and a stale copy arriving late
        (a create_order after its cancel_order, say) would do harm."""

    def run_once(self) -> int:
        """Sends one batch of due entries; returns how many were claimed (0: outbox is idle)."""
        with self._uow_factory() as uow:
            entries = uow.outbox.claim(self._clock.now(), self._batch_size, self._lease)
            uow.commit()
        if not entries:
            return 0
        results = self._publisher.publish([entry.command for entry in entries])
        now = self._clock.now()
        sent: list[int] = []
        replies: list[Event] = []
        with self._uow_factory() as uow:
            for entry, result in zip(entries, results, strict=True):
                if (
                    isinstance(result, Undelivered)
                    and not result.transport_down
                    and now - entry.command.timestamp >= self._give_up_after
                ):
                    sent.append(entry.id)
                    self._metrics.count("commands_expired")
                    log.warning(
                        "command %s of saga %s dropped undelivered after %.0fs (%s); the saga's deadline decides",
                        entry.command.type, entry.command.saga_id, self._give_up_after.total_seconds(), result.reason,
                    )
                    continue
                if isinstance(result, Undelivered):
                    delay = self._retry_delay(entry.attempts)
                    uow.outbox.retry_later(entry.id, now + delay, result.reason)
                    self._metrics.count("commands_undelivered")
                    log.warning(
                        "command %s of saga %s not delivered (%s); retry in %.1fs",
                        entry.command.type, entry.command.saga_id, result.reason, delay.total_seconds(),
                    )
                    continue
                sent.append(entry.id)
                if isinstance(result, Rejected):
                    self._metrics.count("commands_rejected")
                    log.warning("command %s of saga %s rejected: %s", entry.command.type, entry.command.saga_id, result.reason)
                    replies.append(entry.command.failure_event(result.reason, now))
                elif isinstance(result, Delivered) and result.reply is not None:
                    replies.append(result.reply)
            uow.outbox.mark_sent(sent, now)
            uow.commit()
        self._metrics.count("commands_sent", sum(1 for r in results if not isinstance(r, Undelivered)))
        for reply in replies:
            self._orchestrator.apply_event(reply)
        return len(entries)

    def _retry_delay(self, attempts: int) -> timedelta:
        # Full jitter: relays that failed together do not retry together.
        factor: int = 2 ** min(attempts, 16)
        ceiling = min(self._retry_base * factor, self._retry_max)
        return ceiling * random.uniform(0.5, 1.0)
