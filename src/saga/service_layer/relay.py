"""The outbox relay: hands committed commands to the transport and records their delivery.

One way out: claim outbox entries (one statement that locks them and records them
sent), send them inside the unit of work that claimed them, put back those the
transport did not take, commit. What is claimed differs only in how it is found:
the message_ids this process just committed (from its relay queue, at once), or
the entries that are due (their hold or retry time came: a process that died or
failed to send, re-sends, other processes' leftovers). The claim's row locks let
several relays share the outbox without sending an entry twice in the normal case.
Delivery is at least once: a crash after sending and before the commit leaves the
entries unsent, and the command goes again with the same message_id, which
participants deduplicate.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from saga.domain.messages import Command, Event
from saga.ports.clock import Clock
from saga.ports.messaging import CommandPublisher, Delivered, Rejected, SendResult, Undelivered
from saga.ports.persistence import Outbox, OutboxEntry, RetryLater, UnitOfWorkFactory
from saga.service_layer.backoff import pause_after
from saga.service_layer.log_context import log_context
from saga.service_layer.metrics import Metrics
from saga.service_layer.orchestrator import SagaOrchestrator
from saga.service_layer.relay_queue import RelayQueue
from saga.service_layer.tracing import Tracing

log = logging.getLogger(__name__)


class OutboxRelay:
    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        publisher: CommandPublisher,
        orchestrator: SagaOrchestrator,
        clock: Clock,
        metrics: Metrics,
        dispatch: RelayQueue | None = None,
        batch_size: int = 100,
        retry_base: timedelta = timedelta(milliseconds=200),
        retry_max: timedelta = timedelta(seconds=30),
        give_up_after: timedelta = timedelta(seconds=30),
        tracing: Tracing | None = None,
    ) -> None:
        self._tracing = tracing or Tracing()
        self._uow_factory = uow_factory
        self._publisher = publisher
        self._orchestrator = orchestrator
        self._clock = clock
        self._metrics = metrics
        self._dispatch = dispatch
        self._batch_size = batch_size
        self._retry_base = retry_base
        self._retry_max = retry_max
        self._retry_at: datetime | None = None
        """When the earliest entry this relay put back is due again (None: none waits)."""
        self._give_up_after = give_up_after
        """Past this age an undelivered command is dropped: by then the saga's deadline has
        queued its re-send (same message_id) or moved on, and a stale copy arriving late
        (a create_order after its cancel_order, say) would do harm."""

    def run_once(self, poll: bool = True) -> int:
        """Sends this process's fresh commands and, with `poll`, one batch of due outbox
        entries; returns how many commands it handled (0: nothing to do)."""
        handled = self.send_fresh()
        if poll:
            handled += self.send_due()
        return handled

    def send_fresh(self) -> int:
        """Sends a batch of the commands this process just committed; returns how many."""
        if self._dispatch is None:
            return 0
        message_ids = self._dispatch.take(self._batch_size)
        if not message_ids:
            return 0
        return self._send(lambda outbox, now: outbox.claim_by_message_ids(message_ids, now))

    def send_due(self) -> int:
        """Sends a batch of outbox entries whose hold or retry time has come; returns how many."""
        now = self._clock.now()
        if self._retry_at is not None and self._retry_at <= now:
            self._retry_at = None  # this look takes them (or a relay elsewhere took them)
        return self._send(lambda outbox, now: outbox.claim_due(now, self._batch_size))

    def seconds_to_retry(self) -> float | None:
        """Seconds until the earliest command this relay put back is due again (0 when it is
        due now), so that its loop looks at the outbox then; None when it put back none."""
        if self._retry_at is None:
            return None
        return max((self._retry_at - self._clock.now()).total_seconds(), 0.0)

    def _send(self, claim: Callable[[Outbox, datetime], list[OutboxEntry]]) -> int:
        # The send happens inside the transaction that holds the claimed rows, so a saga
        # that withdraws a command (it started undoing) waits for a send in progress and
        # its compensation always leaves after the command it undoes.
        with self._uow_factory() as uow:
            entries = claim(uow.outbox, self._clock.now())
            if not entries:
                return 0
            # One send per message_id: a re-send and its unsent original are one command.
            commands = list({entry.command.message_id: entry.command for entry in entries}.values())
            sending = time.time_ns()
            results = dict(zip((c.message_id for c in commands), self._publisher.publish(commands), strict=True))
            sent = time.time_ns()
            for command in commands:
                self._tracing.sent(command, sending, sent, type(results[command.message_id]).__name__.lower())
            now = self._clock.now()
            retry: list[RetryLater] = []
            for entry in entries:
                result = results[entry.command.message_id]
                if isinstance(result, Undelivered) and not self._expired(entry, result, now):
                    delay = self._retry_delay(entry.attempts)
                    if result.retry_after is not None:  # the participant said how long to wait
                        delay = max(delay, result.retry_after)
                    retry.append(RetryLater(entry.id, now + delay, result.reason))
                    self._metrics.count("commands_undelivered")
                    with log_context(saga_id=entry.command.saga_id, message_id=entry.command.message_id):
                        log.warning(
                            "command %s of saga %s not delivered (%s); retry in %.1fs",
                            entry.command.type,
                            entry.command.saga_id,
                            result.reason,
                            delay.total_seconds(),
                        )
            uow.outbox.retry(retry)
            uow.commit()
        if retry:
            earliest = min(later.at for later in retry)
            self._retry_at = earliest if self._retry_at is None else min(self._retry_at, earliest)
        self._metrics.delivered([m for m, result in results.items() if not isinstance(result, Undelivered)], now)
        self._finish(commands, [results[command.message_id] for command in commands], now)
        return len(entries)

    def _expired(self, entry: OutboxEntry, result: Undelivered, now: datetime) -> bool:
        if result.transport_down or now - entry.command.timestamp < self._give_up_after:
            return False
        self._metrics.count("commands_expired")
        with log_context(saga_id=entry.command.saga_id, message_id=entry.command.message_id):
            log.warning(
                "command %s of saga %s dropped undelivered after %.0fs (%s); the saga's deadline decides",
                entry.command.type,
                entry.command.saga_id,
                self._give_up_after.total_seconds(),
                result.reason,
            )
        return True

    def _finish(self, commands: Sequence[Command], results: Sequence[SendResult], now: datetime) -> None:
        """Counts what went out and applies the replies that came back with it (HTTP)."""
        replies: list[Event] = []
        for command, result in zip(commands, results, strict=True):
            if isinstance(result, Rejected):
                self._metrics.count("commands_rejected")
                with log_context(saga_id=command.saga_id, message_id=command.message_id):
                    log.warning("command %s of saga %s rejected: %s", command.type, command.saga_id, result.reason)
                replies.append(command.failure_event(result.reason, now))
            elif isinstance(result, Delivered) and result.reply is not None:
                replies.append(result.reply)
            if log.isEnabledFor(logging.DEBUG) and not isinstance(result, Undelivered):
                with log_context(saga_id=command.saga_id, message_id=command.message_id):
                    log.debug("command %s of saga %s sent", command.type, command.saga_id)
        self._metrics.count("commands_sent", sum(1 for result in results if not isinstance(result, Undelivered)))
        if len(replies) > 1:
            try:
                self._orchestrator.apply_events(replies)  # one transaction for the batch's replies
                return
            except Exception as error:
                log.warning("%d replies failed as a batch (%r); applying them one at a time", len(replies), error)
        for reply in replies:
            self._orchestrator.apply_event(reply)

    def _retry_delay(self, attempts: int) -> timedelta:
        # The shared backoff (full jitter: relays that failed together do not retry together).
        cap, first = self._retry_max.total_seconds(), self._retry_base.total_seconds()
        return timedelta(seconds=pause_after(attempts + 1, cap, first))
