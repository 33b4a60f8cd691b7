"""What the orchestrator did, as Prometheus metric families, shared by every thread of one process.

Every family is named `saga_*` and every label takes a bounded set of values (a
saga status, a command or event type of the contract, an outcome named here), so
a flood of bad messages cannot create new time series. Each process has its own
registry: `saga serve` and every `saga worker --port` expose what they did
themselves; the gauges read from the database (`StoreGauges`) show the same
values in every process, so dashboards take their `max`, not their `sum`.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from saga.domain.messages import COMMANDS, Event
from saga.domain.saga import Awaiting, CreateOrderSaga, HistoryKind, SagaStatus, Undo, UndoStatus
from saga.domain.steps import ACTIONS, EVENT_TYPES, UNDO
from saga.ports.clock import Clock
from saga.ports.persistence import PersistenceError, UnitOfWorkFactory

SAGA_DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
"""Seconds from POST to a final status: milliseconds when all goes well, up to the
deadlines times their re-sends (minutes) when it does not."""
STEP_DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
"""Seconds from a command's delivery to its reply."""

COMPENSATION_KINDS = tuple(spec.action.command for spec in UNDO.values())
COMPENSATION_OUTCOMES = {
    UndoStatus.RUNNING: "started",
    UndoStatus.CONFIRMED: "confirmed",
    UndoStatus.UNCONFIRMED: "gave_up",
    UndoStatus.UNKNOWN: "gave_up",
}
"""The compensation outcome a change of an undo's status counts as; `rejected` and
`no_reply` are counted from the reply or the deadline."""
OTHER = "other"
"""The label value of anything outside the contract's names, which keeps labels bounded."""

DEAD_LETTER_REASONS = ("bad_message", "unknown_saga", "processing_failed")
"""Why an event went to the dead-letter topic: it could not be read, it names no saga,
or applying it failed again and again."""

SIMPLE_COUNTERS = {
    "sagas_started": "Sagas started (POST /api/orders accepted).",
    "commands_queued": "Commands written to the outbox.",
    "commands_sent": "Commands handed to the transport (Kafka acknowledged, or HTTP answered).",
    "commands_undelivered": "Attempts to hand a command to the transport that failed; the outbox retries them.",
    "commands_expired": "Commands dropped undelivered after the step deadline; the saga's deadline decides.",
    "commands_rejected": "Commands a participant refused over HTTP (4xx); the step fails.",
    "deadlines_postponed": "Deadlines restarted because their command was still waiting in the outbox.",
    "concurrency_conflicts": "Saga updates that lost an optimistic-lock race and were retried.",
    "events_retried": "Events read again because the database was unavailable or busy.",
    "dead_letters_refused": "Times the dead-letter topic refused an event; the event waits and is tried again.",
    "outbox_purged": "Sent outbox entries deleted after their retention.",
    "inbox_purged": "Consumed message ids deleted after their retention.",
    "kafka_consumer_reconnects": "Times an event consumer lost the broker and connected again.",
    "kafka_commit_failures": "Consumer offset commits that failed (the records may be delivered again).",
    "db_commits": "Database transactions committed by this process.",
    "start_transactions": "Transactions that started sagas; orders that arrive together share one (group commit).",
    "operator_retries": "Operator retries of a saga's unconfirmed compensations or clean-ups.",
}
log = logging.getLogger(__name__)

DELIVERIES_REMEMBERED = 100_000
"""Delivery times kept to measure a step's duration; past this the oldest are forgotten."""


def _bounded(value: str, allowed: Iterable[str]) -> str:
    return value if value in allowed else OTHER


@dataclass(frozen=True)
class SagaBefore:
    """What the metrics compare a saga with after a use case changed it."""

    status: SagaStatus
    awaiting: Awaiting | None
    compensations: tuple[Undo, ...]

    @classmethod
    def of(cls, saga: CreateOrderSaga) -> SagaBefore:
        return cls(saga.status, saga.awaiting, tuple(saga.compensations))


class Metrics:
    """The process's metric families. `count()` takes the names of SIMPLE_COUNTERS;
    the other methods record what one use case did. Thread-safe."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self._simple = {
            name: Counter(f"saga_{name}", help_text, registry=registry) for name, help_text in SIMPLE_COUNTERS.items()
        }
        self._finished = Counter(
            "saga_sagas_finished", "Sagas that reached a final status, by that status.", ["status"], registry=registry
        )
        self._duration = Histogram(
            "saga_duration_seconds",
            "Seconds from a saga's start to its final status, by that status.",
            ["status"],
            buckets=SAGA_DURATION_BUCKETS,
            registry=registry,
        )
        self._step_duration = Histogram(
            "saga_step_duration_seconds",
            "Seconds from a command's delivery to the reply that answered it, by command and reply.",
            ["command", "reply"],
            buckets=STEP_DURATION_BUCKETS,
            registry=registry,
        )
        self._events = Counter(
            "saga_events",
            "Participant events received, by type and outcome (applied, ignored, duplicate, unknown_saga, bad).",
            ["type", "outcome"],
            registry=registry,
        )
        self._dead_lettered = Counter(
            "saga_events_dead_lettered",
            "Events sent to the dead-letter topic, by reason.",
            ["reason"],
            registry=registry,
        )
        self._compensations = Counter(
            "saga_compensations",
            "Compensations by kind and outcome (started, confirmed, rejected, no_reply, gave_up).",
            ["kind", "outcome"],
            registry=registry,
        )
        self._deadlines = Counter(
            "saga_deadlines_passed",
            "Deadlines that passed without a reply, by the command awaited.",
            ["command"],
            registry=registry,
        )
        self._consumers = Gauge(
            "saga_event_consumers", "Event consumers this process runs (Kafka transport).", registry=registry
        )
        self._consumers_ready = Gauge(
            "saga_event_consumers_ready",
            "Event consumers of this process connected to the broker and polling.",
            registry=registry,
        )
        self._lag_lock = threading.Lock()
        self._lag: dict[int, dict[tuple[str, int], int]] = {}
        registry.register(_LagCollector(self))
        self._deliveries_lock = threading.Lock()
        self._deliveries: OrderedDict[str, datetime] = OrderedDict()

    # ----------------------------------------------------------------- counts

    def count(self, name: str, amount: int = 1) -> None:
        """Adds `amount` to the counter `saga_<name>_total`. The names of SIMPLE_COUNTERS exist from
        the start; any other (a lower-case identifier) is created on first use."""
        counter = self._simple.get(name)
        if counter is None:
            with self._deliveries_lock:
                counter = self._simple.get(name)
                if counter is None:
                    counter = Counter(f"saga_{name}", f"{name.replace('_', ' ').capitalize()}.", registry=self.registry)
                    self._simple[name] = counter
        if amount:
            counter.inc(amount)

    def event(self, event_type: str, outcome: str) -> None:
        """One event received; `outcome` is an EventOutcome value, or "bad" when it could not be read."""
        self._events.labels(_bounded(event_type, EVENT_TYPES), outcome).inc()

    def dead_lettered(self, reason: str) -> None:
        """One event sent to the dead-letter topic; `reason` is one of DEAD_LETTER_REASONS."""
        self._dead_lettered.labels(_bounded(reason, DEAD_LETTER_REASONS)).inc()

    def delivered(self, message_ids: Sequence[str], at: datetime) -> None:
        """Remembers when these commands reached the transport, to time their replies."""
        with self._deliveries_lock:
            for message_id in message_ids:
                self._deliveries[message_id] = at
                self._deliveries.move_to_end(message_id)
            while len(self._deliveries) > DELIVERIES_REMEMBERED:
                self._deliveries.popitem(last=False)

    def saga_changed(
        self,
        saga: CreateOrderSaga,
        before: SagaBefore,
        now: datetime,
        reply: Event | None = None,
        deadline: bool = False,
        after: SagaBefore | None = None,
    ) -> None:
        """Records what one committed use case did to `saga`: the reply it applied (its
        step's duration, a compensation rejected), the deadline that passed, each
        compensation started, confirmed or given up, the final status it reached.
        `after`, when given, is the saga right after this change (a batch may change it again)."""
        if after is None:
            after = SagaBefore.of(saga)
        awaiting_before = before.awaiting
        if reply is not None and awaiting_before is not None:
            self._replied(saga, awaiting_before, reply, now)
        if deadline and awaiting_before is not None and awaiting_before.sent:
            command = awaiting_before.command_type
            self._deadlines.labels(_bounded(command, COMMANDS)).inc()
            if command in COMPENSATION_KINDS:
                self._compensations.labels(command, "no_reply").inc()
        for index, undo in enumerate(after.compensations):
            earlier = before.compensations[index].status if index < len(before.compensations) else None
            outcome = COMPENSATION_OUTCOMES.get(undo.status)
            if undo.status is not earlier and outcome is not None:
                self._compensations.labels(_bounded(undo.command_type, COMPENSATION_KINDS), outcome).inc()
        if after.status is not before.status and after.status.is_final:
            self._finished.labels(after.status.value).inc()
            ended = saga.completed_at or now
            self._duration.labels(after.status.value).observe(max((ended - saga.created_at).total_seconds(), 0.0))

    def _replied(self, saga: CreateOrderSaga, awaiting: Awaiting, reply: Event, now: datetime) -> None:
        action = ACTIONS.get(awaiting.command_type)
        if action is None or reply.type not in action.replies:
            return
        succeeded = reply.type == action.success
        with self._deliveries_lock:
            sent_at = self._deliveries.pop(awaiting.message_id, None)
        if sent_at is None:
            # Another process delivered it: the time the command was written stands in.
            sent_at = awaiting.queued_at
        if sent_at is None:  # a saga stored before its awaited command kept that time
            sent_at = next(
                (
                    entry.at
                    for entry in reversed(saga.history)
                    if entry.kind is HistoryKind.COMMAND and entry.message_id == awaiting.message_id
                ),
                None,
            )
        if sent_at is not None:
            self._step_duration.labels(awaiting.command_type, "success" if succeeded else "failure").observe(
                max((now - sent_at).total_seconds(), 0.0)
            )
        if awaiting.command_type in COMPENSATION_KINDS and not succeeded:
            self._compensations.labels(awaiting.command_type, "rejected").inc()

    # ----------------------------------------------------------- consumers

    def consumers_configured(self, count: int) -> None:
        self._consumers.set(count)

    def consumer_ready(self, ready: bool) -> None:
        """One consumer connected (True) or lost its broker or stopped (False)."""
        if ready:
            self._consumers_ready.inc()
        else:
            self._consumers_ready.dec()

    def consumer_lag(self, consumer: int, lag: dict[tuple[str, int], int]) -> None:
        """Records consumer `consumer`'s lag per (topic, partition) it holds, as the broker reports it;
        an empty dict when it holds none."""
        with self._lag_lock:
            self._lag[consumer] = dict(lag)

    def lag_by_topic(self) -> dict[str, int]:
        with self._lag_lock:
            totals: dict[str, int] = {}
            for partitions in self._lag.values():
                for (topic, _), lag in partitions.items():
                    totals[topic] = totals.get(topic, 0) + lag
            return totals

    # ----------------------------------------------------------- reading back

    def snapshot(self) -> dict[str, int]:
        """Every counter of this process under a flat name: `commands_sent`, `events_applied`, ..."""
        return flat_counters(self.registry.collect())

    def get(self, name: str) -> int:
        return self.snapshot().get(name, 0)


class _LagCollector(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "saga_kafka_consumer_lag_records",
            "Records not yet consumed on the event topics, from the broker's high watermark.",
            labels=["topic"],
        )
        for topic, lag in sorted(self._metrics.lag_by_topic().items()):
            family.add_metric([topic], lag)
        yield family


class StoreGauges(Collector):
    """Gauges read from the database at each scrape: sagas by status, the outbox backlog,
    and `saga_database_up`, 0 when the database could not be read. Those read from it are
    then left out, not guessed, so a scrape in an outage still exports every counter and
    Prometheus marks the database gauges stale (docs/operations.md, "Metrics")."""

    def __init__(self, uow_factory: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow_factory = uow_factory
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        try:
            with self._uow_factory(read_only=True) as uow:
                by_status = uow.sagas.count_by_status()
                pending = uow.outbox.pending_count()
                oldest = uow.outbox.oldest_pending_at()
        except PersistenceError as error:
            log.debug("metrics: database gauges left out: %s", error)
            yield _database_up(False)
            return
        yield _database_up(True)
        sagas = GaugeMetricFamily("saga_sagas", "Sagas stored, by status.", labels=["status"])
        for status in SagaStatus:
            sagas.add_metric([status.value], by_status.get(status, 0))
        yield sagas
        yield GaugeMetricFamily("saga_outbox_pending_commands", "Commands waiting unsent in the outbox.", value=pending)
        age = 0.0 if oldest is None else max((self._clock.now() - oldest).total_seconds(), 0.0)
        yield GaugeMetricFamily(
            "saga_outbox_oldest_pending_age_seconds",
            "Seconds since the oldest command still waiting unsent in the outbox was written (0 when none waits).",
            value=age,
        )


def _database_up(up: bool) -> Metric:
    return GaugeMetricFamily(
        "saga_database_up",
        "1 when this scrape read the database gauges (saga_sagas, saga_outbox_*); 0 when the "
        "database was unavailable or busy and they were left out.",
        value=1 if up else 0,
    )


def flat_counters(families: Iterable[Metric]) -> dict[str, int]:
    """Counter families as flat names: `saga_<name>_total` summed over its labels as
    `<name>`, and per outcome as `<name>_<outcome>` (`events_applied`)."""
    flat: dict[str, int] = {}
    for family in families:
        if family.type != "counter" or not family.name.startswith("saga_"):
            continue
        name = family.name.removeprefix("saga_")
        for sample in family.samples:
            if not sample.name.endswith("_total"):
                continue
            value = int(sample.value)
            flat[name] = flat.get(name, 0) + value
            if "outcome" in sample.labels:
                key = f"{name}_{sample.labels['outcome']}"
                flat[key] = flat.get(key, 0) + value
    return flat
