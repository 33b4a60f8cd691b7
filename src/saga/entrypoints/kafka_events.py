"""Participants' events from Kafka to the intake, at least once, with a dead-letter topic.

An offset is committed only after the intake returned, that is after the event's
database transaction committed: a crash can cause redelivery (the inbox and the
saga's state make it change nothing), never loss. A bad message or one naming no
saga goes to the dead-letter topic unchanged and the consumer goes on. When the
database is down, or the dead-letter topic refuses a record, nothing is committed
past that record: it is read again after a pause, until it is applied or set aside.

Each source says whether it is ready (`readiness()`: a member of a stable consumer
group, with or without partitions) and up to when it has read everything it was
given (`caught_up_at()`): the deadline sweep acts only on deadlines that passed
before that moment, so an event that waits unread is never taken for a
participant's silence. A group join that does not settle in time is given up and
tried again with a fresh consumer (a new member).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from saga.adapters.kafka_consumer import InboundRecord, KafkaRecordConsumer, KafkaUnavailable
from saga.adapters.kafka_publisher import ensure_topics
from saga.adapters.kafka_settings import KafkaSettings
from saga.ports.persistence import ConcurrencyConflict, StorageUnavailable
from saga.service_layer.backoff import Backoff, Outage
from saga.service_layer.metrics import Metrics
from saga.service_layer.receiver import EventReceiver, Incoming, Receipt
from saga.service_layer.tracing import incoming_traceparent

log = logging.getLogger(__name__)

POLL_TIMEOUT_MS = 200
ATTEMPTS_BEFORE_DEAD_LETTER = 3
"""Tries of a record whose processing raised something unexpected, before it is set aside."""


MIN_JOIN_SETTLE_SECONDS = 30.0


def join_settle_seconds(settings: KafkaSettings) -> float:
    """How long a group join may take before it is given up: three session timeouts, at least 30 s."""
    return max(MIN_JOIN_SETTLE_SECONDS, 3 * settings.session_timeout_ms / 1000)


class JoinNotSettled(KafkaUnavailable):
    """This member did not reach a stable group in time; a fresh consumer joins instead."""


class KafkaEventSource:
    """An EventConsumer over the event topics, in the settings' consumer group."""

    def __init__(
        self, settings: KafkaSettings, intake: EventReceiver, metrics: Metrics, join_timeout: float | None = None
    ) -> None:
        self._settings = settings
        self._intake = intake
        self._metrics = metrics
        self._join_timeout = join_settle_seconds(settings) if join_timeout is None else join_timeout
        self._topics_ready = False
        self._failed_attempts: dict[str, int] = {}
        self._refused_dead_letters: dict[str, int] = {}
        self._problem: str | None = f"not connected to the broker yet to join consumer group {settings.group_id}"
        self._caught_up_at: datetime | None = None
        # One log line when the broker or the database goes away, one when it is back.
        self._connection_outage = Outage("kafka event consumer's connection", log)
        self._processing_outage = Outage("kafka event consumer", log)

    def readiness(self) -> str | None:
        """None while this consumer is a member of a stable group (partitions or not), else what it waits for."""
        return self._problem

    def caught_up_at(self) -> datetime | None:
        """The last moment (UTC) by which every record this consumer was given was processed; None before any."""
        return self._caught_up_at

    def run(self, stop: threading.Event) -> None:
        backoff = Backoff(self._settings.retry_backoff_max_ms / 1000)
        while not stop.is_set():
            consumer: KafkaRecordConsumer | None = None
            try:
                if not self._topics_ready:
                    self._topics_ready = ensure_topics(self._settings)
                    if not self._topics_ready:
                        raise KafkaUnavailable(f"no broker answered at {self._settings.bootstrap_servers}")
                consumer = KafkaRecordConsumer(
                    self._settings,
                    self._settings.event_topics(),
                    self._settings.group_id,
                    client_id="create-order-saga-orchestrator",
                )
                self._metrics.consumer_ready(True)
                log.info("consuming %s as group %s", ", ".join(self._settings.event_topics()), self._settings.group_id)
                self._connection_outage.succeeded()
                backoff.reset()
                self._consume(consumer, stop, backoff)
            except KafkaUnavailable as error:
                self._problem = f"kafka consumer: {error}"
                self._metrics.count("kafka_consumer_reconnects")
                pause = backoff.next_pause()
                self._connection_outage.failed(f"kafka consumer: {error}", pause)
                stop.wait(pause)
            finally:
                if consumer is not None:
                    self._metrics.consumer_ready(False)
                    self._metrics.consumer_lag(id(self), {})
                    consumer.close()

    def _consume(self, consumer: KafkaRecordConsumer, stop: threading.Event, backoff: Backoff) -> None:
        assignment: list[str] = []
        joining_since = time.monotonic()
        settled_polls = 0  # polls since this member last became stable with its current partitions
        self._problem = f"joining consumer group {self._settings.group_id}"
        while not stop.is_set():
            polled_at = datetime.now(UTC)
            records = consumer.poll(POLL_TIMEOUT_MS)
            self._metrics.consumer_lag(id(self), consumer.lag())
            if consumer.assignment() != assignment:
                assignment = consumer.assignment()
                settled_polls = 0
                log.info(
                    "group %s assigned %d partition(s): %s",
                    self._settings.group_id,
                    len(assignment),
                    " ".join(assignment),
                )
            if consumer.in_stable_group():
                joining_since = time.monotonic()
                settled_polls += 1
                self._problem = None
            else:
                settled_polls = 0
                waited = time.monotonic() - joining_since
                self._problem = f"not a member of a stable group {self._settings.group_id} ({waited:.0f}s)"
                if waited > self._join_timeout:
                    self._metrics.count("kafka_group_joins_given_up")
                    raise JoinNotSettled(f"group {self._settings.group_id} did not settle within {waited:.0f}s")
            done, problem = self._process(consumer, records)
            self._commit(consumer, done)
            if problem is None:
                # A poll that was not full and was wholly processed read everything its
                # partitions held when it began (the first poll after joining may return
                # before the fetch does, hence a settled one).
                if settled_polls >= 2 and len(records) < self._settings.max_poll_records:
                    self._caught_up_at = polled_at
                backoff.reset()
                self._processing_outage.succeeded()
                continue
            undone = records[len(done) :]
            consumer.rewind(undone)
            pause = backoff.next_pause()
            self._processing_outage.failed(
                f"event {undone[0].source} not processed ({problem}); {len(undone)} record(s) read again", pause
            )
            stop.wait(pause)

    def _commit(self, consumer: KafkaRecordConsumer, done: Sequence[InboundRecord]) -> None:
        try:
            consumer.commit(done)
        except KafkaUnavailable as error:
            # Nothing is lost: whoever reads these partitions next gets the records again,
            # and the inbox and the saga's state make them change nothing.
            self._metrics.count("kafka_commit_failures")
            log.warning("offsets not committed (%s); %d record(s) may be delivered again", error, len(done))

    def _process(
        self, consumer: KafkaRecordConsumer, records: Sequence[InboundRecord]
    ) -> tuple[list[InboundRecord], str | None]:
        """Processes records in order; returns those done, and why it stopped early (None: all done).

        A poll's records are applied as one batch (one transaction); when applying the
        batch raises something unexpected, they are applied one at a time instead, so the
        record at fault is found and, after its tries, set aside alone.
        """
        if len(records) > 1:
            batch = [Incoming(record.value or b"", record.source, record.header("traceparent")) for record in records]
            try:
                receipts = self._intake.receive_many(batch)
            except (StorageUnavailable, ConcurrencyConflict) as error:
                self._metrics.count("events_retried")
                return [], f"{type(error).__name__}: {error}"
            except Exception as error:
                log.warning("a batch of %d events failed (%r); applying them one at a time", len(records), error)
            else:
                return self._settle(consumer, records, receipts)
        done: list[InboundRecord] = []
        for record in records:
            problem = self._process_one(consumer, record)
            if problem is not None:
                return done, problem
            done.append(record)
        return done, None

    def _settle(
        self, consumer: KafkaRecordConsumer, records: Sequence[InboundRecord], receipts: Sequence[Receipt]
    ) -> tuple[list[InboundRecord], str | None]:
        """Sets aside the applied batch's records that were bad or named no saga, in order;
        returns those done, and why it stopped early (a refused dead letter)."""
        done: list[InboundRecord] = []
        for record, result in zip(records, receipts, strict=True):
            self._failed_attempts.pop(record.source, None)
            if result.problem is not None:
                cause = "bad_message" if result.outcome is None else result.outcome.value
                problem = self._set_aside(consumer, record, result.problem, cause)
                if problem is not None:
                    return done, problem
            done.append(record)
        return done, None

    def _process_one(self, consumer: KafkaRecordConsumer, record: InboundRecord) -> str | None:
        """Applies or dead-letters one record; returns why it must be retried, or None when it is done."""
        try:
            with incoming_traceparent(record.header("traceparent")):
                result = self._intake.receive(record.value or b"", record.source)
        except (StorageUnavailable, ConcurrencyConflict) as error:
            # Transient: the database is down or the saga kept changing. Not the message's fault.
            self._metrics.count("events_retried")
            return f"{type(error).__name__}: {error}"
        except Exception as error:
            attempts = self._failed_attempts.get(record.source, 0) + 1
            log.exception("event %s failed (attempt %d of %d)", record.source, attempts, ATTEMPTS_BEFORE_DEAD_LETTER)
            if attempts < ATTEMPTS_BEFORE_DEAD_LETTER:
                self._failed_attempts[record.source] = attempts
                return f"{type(error).__name__}: {error}"
            # A poison message must not hold its partition up for good.
            self._failed_attempts.pop(record.source, None)
            return self._set_aside(
                consumer, record, f"processing failed: {type(error).__name__}: {error}", "processing_failed"
            )
        self._failed_attempts.pop(record.source, None)
        if result.problem is not None:
            cause = "bad_message" if result.outcome is None else result.outcome.value
            return self._set_aside(consumer, record, result.problem, cause)
        return None

    def _set_aside(self, consumer: KafkaRecordConsumer, record: InboundRecord, reason: str, cause: str) -> str | None:
        """Dead-letters a record; returns why it must be retried, or None when it is done.
        `cause` is the bounded reason the metrics count (`bad_message`, `unknown_saga`, `processing_failed`).

        A record the dead-letter topic refuses is neither applied nor set aside: its offset
        is not committed and it is tried again after a pause, however long the refusal
        lasts, so nothing is lost.
        """
        try:
            self._dead_letter(consumer, record, reason, cause)
        except KafkaUnavailable as error:
            refusals = self._refused_dead_letters.get(record.source, 0) + 1
            self._refused_dead_letters[record.source] = refusals
            self._metrics.count("dead_letters_refused")
            if refusals == ATTEMPTS_BEFORE_DEAD_LETTER:
                log.error(
                    "event %s: the dead-letter topic %s refused it %d times (%s); its partition waits",
                    record.source,
                    self._settings.dead_letter_topic,
                    refusals,
                    error,
                )
            return f"dead-letter topic unavailable: {error}"
        self._refused_dead_letters.pop(record.source, None)
        return None

    def _dead_letter(self, consumer: KafkaRecordConsumer, record: InboundRecord, reason: str, cause: str) -> None:
        consumer.dead_letter(record, self._settings.dead_letter_topic, reason)
        self._metrics.dead_lettered(cause)
        log.warning("event %s sent to %s: %s", record.source, self._settings.dead_letter_topic, reason)
