"""The Kafka event loop's decisions about one record, with a stand-in for the broker client.

The broker itself is exercised in tests/integration; here the client refuses the
dead-letter topic (which a real broker does only with access control), or never
settles in its group, at the test's word.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from tests.support.kafka import event_envelope

from saga.adapters.envelope import decode_event
from saga.adapters.kafka_consumer import InboundRecord, KafkaUnavailable
from saga.adapters.kafka_settings import KafkaSettings
from saga.domain.messages import Event
from saga.domain.policy import SagaPolicy
from saga.domain.saga import CreateOrderSaga
from saga.entrypoints.kafka_events import ATTEMPTS_BEFORE_DEAD_LETTER, JoinNotSettled, KafkaEventSource
from saga.entrypoints.worker import NEVER, BackgroundWorker
from saga.service_layer.backoff import Backoff
from saga.service_layer.receiver import EventReceiver
from saga.testing import SagaHarness


class RefusingDeadLetters:
    """Refuses the dead-letter topic `refusals` times (a long broker outage), then accepts."""

    def __init__(self, refusals: int) -> None:
        self.refusals = refusals
        self.tries = 0
        self.dead_lettered: list[InboundRecord] = []

    def dead_letter(self, record: InboundRecord, topic: str, reason: str) -> None:
        self.tries += 1
        if self.tries <= self.refusals:
            raise KafkaUnavailable("KafkaTimeoutError: the dead-letter topic did not answer")
        self.dead_lettered.append(record)


def bad_record() -> InboundRecord:
    return InboundRecord("order_events", 0, 7, b"k", b"not json", (), 0)


def test_a_record_the_dead_letter_topic_refuses_is_never_passed_until_it_is_dead_lettered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    harness = SagaHarness()
    source = KafkaEventSource(
        KafkaSettings(), EventReceiver(harness.orchestrator, harness.metrics, decode_event), harness.metrics
    )
    refusals = 4 * ATTEMPTS_BEFORE_DEAD_LETTER
    consumer: Any = RefusingDeadLetters(refusals)

    rounds = [source._process(consumer, [bad_record()]) for _ in range(refusals)]

    # Each round: nothing done (so no offset is committed past it), and a reason to wait and retry.
    assert all(done == [] and problem is not None and "dead-letter" in problem for done, problem in rounds)
    assert harness.metrics.get("dead_letters_refused") == refusals
    assert "order_events/0@7: the dead-letter topic" in caplog.text
    done, problem = source._process(consumer, [bad_record()])
    assert problem is None and done == [bad_record()]
    assert consumer.dead_lettered == [bad_record()]
    assert harness.metrics.get("events_dead_lettered") == 1


@pytest.mark.parametrize("variable", ["SAGA_KAFKA_DLQ_TOPIC", "SAGA_TOPIC_ORDER_EVENTS"])
def test_an_illegal_topic_name_stops_the_start_with_its_variable(variable: str) -> None:
    from saga.entrypoints.config import ConfigError, Settings

    with pytest.raises(ConfigError, match=variable):
        Settings.from_env({"KAFKA_BOOTSTRAP_SERVERS": "k:9092", variable: "orders events!"})


class GroupStandIn:
    """A consumer whose group membership the test decides; it has no records to give."""

    def __init__(self, stable: bool, records: list[InboundRecord] | None = None) -> None:
        self.stable = stable
        self.records = records or []
        self.polls = 0

    def poll(self, timeout_ms: int) -> list[InboundRecord]:
        self.polls += 1
        records, self.records = self.records, []
        return records

    def assignment(self) -> list[str]:
        return ["order_events/0"] if self.stable else []

    def in_stable_group(self) -> bool:
        return self.stable

    def lag(self) -> dict[tuple[str, int], int]:
        return {}

    def commit(self, done: Any) -> None:
        pass

    def rewind(self, undone: Any) -> None:
        pass


def run_polls(source: KafkaEventSource, consumer: Any, polls: int) -> None:
    """Runs the consume loop for `polls` polls."""
    stop = threading.Event()
    original = consumer.poll

    def poll_then_stop(timeout_ms: int) -> list[InboundRecord]:
        if consumer.polls + 1 >= polls:
            stop.set()
        return original(timeout_ms)  # type: ignore[no-any-return]

    consumer.poll = poll_then_stop
    source._consume(consumer, stop, Backoff(0.01))


def test_a_consumer_is_ready_only_as_a_member_of_a_stable_group() -> None:
    harness = SagaHarness()
    source = KafkaEventSource(
        KafkaSettings(), EventReceiver(harness.orchestrator, harness.metrics, decode_event), harness.metrics
    )
    assert source.readiness() is not None  # not even connected

    joining: Any = GroupStandIn(stable=False)
    run_polls(source, joining, 3)
    problem = source.readiness()
    assert problem is not None and "stable group" in problem and "create-order-saga-orchestrator" in problem
    assert source.caught_up_at() is None

    joined: Any = GroupStandIn(stable=True)
    run_polls(source, joined, 3)
    assert source.readiness() is None
    assert source.caught_up_at() is not None


def test_a_join_that_does_not_settle_in_time_is_given_up_for_a_fresh_consumer() -> None:
    harness = SagaHarness()
    source = KafkaEventSource(
        KafkaSettings(),
        EventReceiver(harness.orchestrator, harness.metrics, decode_event),
        harness.metrics,
        join_timeout=0.05,
    )
    never: Any = GroupStandIn(stable=False)

    def poll(timeout_ms: int) -> list[object]:
        time.sleep(0.02)
        return []

    never.poll = poll

    with pytest.raises(JoinNotSettled, match="did not settle"):
        source._consume(never, threading.Event(), Backoff(0.01))
    assert harness.metrics.get("kafka_group_joins_given_up") == 1
    assert issubclass(JoinNotSettled, KafkaUnavailable)  # run() closes it (leaving the group) and starts anew


def test_a_deadline_does_not_count_while_its_reply_may_wait_unread() -> None:
    harness = SagaHarness(silent_step="CREATE_ORDER")
    saga_id = harness.start_order("cust_1", {"foodItems": [{"name": "Burger", "price": 12.99, "quantity": 1}]})
    sent_at = harness.clock.now()
    harness.clock.advance(SagaPolicy().step_deadline * 2)

    # The consumers last read everything before the deadline passed: a reply may be waiting.
    assert harness.orchestrator.sweep_deadlines(events_read_until=sent_at) == 0
    saga = harness.saga(saga_id)
    assert saga.awaiting is not None and saga.awaiting.attempts == 1
    # Once they have read past the deadline, the silence is the participant's.
    assert harness.orchestrator.sweep_deadlines(events_read_until=harness.clock.now()) == 1
    saga = harness.saga(saga_id)
    assert saga.awaiting is not None and saga.awaiting.attempts == 2


def test_the_worker_sweeps_only_up_to_what_every_group_consumer_has_read() -> None:
    harness = SagaHarness()
    early, late = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)

    class Member:
        def __init__(self, at: datetime | None, problem: str | None = None) -> None:
            self.at, self.problem = at, problem

        def run(self, stop: threading.Event) -> None: ...

        def readiness(self) -> str | None:
            return self.problem

        def caught_up_at(self) -> datetime | None:
            return self.at

    def worker(*sources: Any) -> BackgroundWorker:
        return BackgroundWorker(None, harness.orchestrator, threading.Event(), list(sources), 1.0, 1.0)  # type: ignore[arg-type]

    assert worker().events_read_until() is None
    assert worker(Member(early), Member(late)).events_read_until() == early
    assert worker(Member(late), Member(None)).events_read_until() == NEVER
    assert worker(Member(late), Member(late, "joining group g")).readiness() == "joining group g"
    assert worker(Member(late)).readiness() is None


def event_record(offset: int, event_type: str, saga_id: str, payload: dict[str, Any]) -> InboundRecord:
    body = event_envelope(event_type, saga_id, payload, message_id=f"m-{offset}")
    return InboundRecord("order_events", 0, offset, saga_id.encode(), body, (), 0)


def waiting_sagas(harness: SagaHarness, count: int) -> list[str]:
    """Sagas whose create_order went out and whose reply has not come."""
    return [harness.start_order("cust_1", {"foodItems": [{"price": 5, "quantity": 1}]}) for _ in range(count)]


def test_a_polls_records_are_applied_together_and_the_bad_ones_set_aside_in_order() -> None:
    harness = SagaHarness(silent_step="CREATE_ORDER")
    first, second = waiting_sagas(harness, 2)
    source = KafkaEventSource(
        KafkaSettings(), EventReceiver(harness.orchestrator, harness.metrics, decode_event), harness.metrics
    )
    consumer: Any = RefusingDeadLetters(0)
    records = [
        event_record(1, "order.created", first, {"order_id": "o-1"}),
        InboundRecord("order_events", 0, 2, b"k", b"not json", (), 0),
        event_record(3, "order.created", "00000000-0000-4000-8000-000000000000", {"order_id": "o-x"}),
        event_record(4, "order.created", second, {"order_id": "o-2"}),
        event_record(1, "order.created", first, {"order_id": "o-1"}),  # redelivered: a duplicate
    ]

    done, problem = source._process(consumer, records)

    assert problem is None and done == records
    assert [record.offset for record in consumer.dead_lettered] == [2, 3]
    assert harness.saga(first).order_id == "o-1" and harness.saga(second).order_id == "o-2"
    assert harness.saga(first).current_step.value == "GET_PAYMENT_INFO"
    assert harness.metrics.get("events_dead_lettered") == 2


def test_a_batch_that_fails_unexpectedly_is_applied_one_at_a_time_so_only_its_culprit_waits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    harness = SagaHarness(silent_step="CREATE_ORDER")
    first, culprit, third = waiting_sagas(harness, 3)
    source = KafkaEventSource(
        KafkaSettings(), EventReceiver(harness.orchestrator, harness.metrics, decode_event), harness.metrics
    )
    original = CreateOrderSaga.handle

    def handle(saga: CreateOrderSaga, event: Event, *args: Any) -> Any:
        if saga.id == culprit:
            raise RuntimeError("a bug only this saga meets")
        return original(saga, event, *args)

    monkeypatch.setattr(CreateOrderSaga, "handle", handle)
    consumer: Any = RefusingDeadLetters(0)
    records = [
        event_record(n, "order.created", saga_id, {"order_id": f"o-{n}"})
        for n, saga_id in enumerate([first, culprit, third])
    ]

    done, problem = source._process(consumer, records)

    assert done == records[:1] and problem is not None and "a bug only this saga meets" in problem
    assert harness.saga(first).order_id == "o-0"
    assert harness.saga(culprit).order_id is None and harness.saga(third).order_id is None
    for _ in range(ATTEMPTS_BEFORE_DEAD_LETTER - 1):  # its first try was the one above
        done, problem = source._process(consumer, records[1:])
    assert problem is None and done == records[1:]
    assert consumer.dead_lettered == [records[1]]
    assert harness.saga(third).order_id == "o-2"
