"""The Kafka simulator's loop, against a scripted consumer and producer: what it publishes and commits.

A poll's commands are answered together and their replies not waited for one by one; a
command is still answered once, with the same replies, whatever the broker refuses.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from kafka.errors import KafkaError, KafkaTimeoutError, NotLeaderForPartitionError
from kafka.future import Future

from saga.adapters.kafka_consumer import InboundRecord, KafkaUnavailable
from saga.adapters.platform_participants import Knob, Knobs, PlatformParticipants
from saga.adapters.simulated_participants import SimulatedParticipants
from saga.adapters.simulation_profiles import DefaultProfile, ParticipantProfile
from saga.domain.messages import JsonObject
from saga.entrypoints.config import KafkaSettings
from saga.entrypoints.simulate_kafka import COMMIT_INTERVAL_SECONDS, KafkaParticipantSimulator
from saga.ports.ledger import ResourceKind

SETTINGS = KafkaSettings()
ORDER_DETAILS: JsonObject = {
    "foodItems": [{"name": "Burger", "price": 12.99, "quantity": 2}],
    "deliveryFee": 1.5,
    "deliveryLocation": "North Campus",
}


def command(command_type: str, saga_id: str, payload: JsonObject, message_id: str | None = None) -> JsonObject:
    return {
        "type": command_type,
        "correlation_id": saga_id,
        "timestamp": datetime.now(UTC).isoformat(),
        "payload": payload,
        "message_id": message_id or str(uuid.uuid4()),
    }


def create_order(saga_id: str, message_id: str | None = None) -> JsonObject:
    payload = {"customer_id": "cust_1", "order_details": ORDER_DETAILS, "saga_id": saga_id}
    return command("create_order", saga_id, payload, message_id)


def records(*commands: JsonObject, topic: str = "order_commands", first_offset: int = 0) -> list[InboundRecord]:
    return [
        InboundRecord(topic, 0, first_offset + index, None, json.dumps(body).encode(), (), 0)
        for index, body in enumerate(commands)
    ]


class ScriptedConsumer:
    """Hands out one scripted poll at a time; sets `stop` once the script is done."""

    def __init__(self, polls: Sequence[Sequence[InboundRecord]], stop: threading.Event) -> None:
        self._polls = [list(poll) for poll in polls]
        self._stop = stop
        self.commits: list[list[tuple[str, int, int]]] = []

    def poll(self, timeout_ms: int) -> list[InboundRecord]:
        if not self._polls:
            self._stop.set()
            return []
        return self._polls.pop(0)

    def commit(self, done: Sequence[InboundRecord]) -> None:
        self.commits.append([(record.topic, record.partition, record.offset) for record in done])

    def assignment(self) -> list[str]:
        return ["order_commands/0"]

    def committed_offset(self) -> int:
        """The offset a restart resumes from on order_commands/0."""
        return max((offset + 1 for commit in self.commits for _, _, offset in commit), default=0)


@dataclass
class Published:
    topic: str
    value: JsonObject
    key: bytes | None
    partition: int | None


@dataclass
class RecordingProducer:
    """Acknowledges every record at once, except those `refuse` picks (the broker refuses them)."""

    refuse: Callable[[JsonObject], bool] = lambda reply: False
    acknowledged: list[Published] = field(default_factory=list)
    refused: list[Published] = field(default_factory=list)

    def send(self, topic: str, *, value: bytes, key: bytes | None = None, partition: int | None = None) -> Future:
        record = Published(topic, json.loads(value), key, partition)
        if self.refuse(record.value):
            self.refused.append(record)
            return Future().failure(NotLeaderForPartitionError("refused"))
        self.acknowledged.append(record)
        return Future().success(None)

    def partitions_for(self, topic: str) -> set[int]:
        return {0, 1, 2, 3}

    def flush(self, timeout: float | None = None) -> None:
        pass


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def simulator(profile: ParticipantProfile | None = None, **options: object) -> KafkaParticipantSimulator:
    return KafkaParticipantSimulator(
        SETTINGS,
        profile or DefaultProfile(SimulatedParticipants()),
        **options,  # type: ignore[arg-type]  # the tests pass the keyword options by name
    )


def serve(
    sim: KafkaParticipantSimulator, polls: Sequence[Sequence[InboundRecord]], producer: RecordingProducer
) -> ScriptedConsumer:
    stop = threading.Event()
    consumer = ScriptedConsumer(polls, stop)
    sim.serve(consumer, producer, stop)
    return consumer


def test_every_command_of_a_poll_is_answered_keyed_by_saga_on_its_participants_event_topic() -> None:
    saga = str(uuid.uuid4())
    polls = [
        records(create_order(saga), command("update_order_status", saga, {"order_id": "o1", "status": "CREATED"}))
        + records(command("get_payment_info", saga, {"user_id": "cust_1"}), topic="user_commands")
    ]
    producer = RecordingProducer()
    serve(simulator(), polls, producer)
    assert [(reply.topic, reply.value["type"]) for reply in producer.acknowledged] == [
        ("order_events", "order.created"),
        ("order_events", "order.status_updated"),
        ("user_events", "user.payment_info_retrieved"),
    ]
    assert {reply.key for reply in producer.acknowledged} == {saga.encode()}
    assert {reply.value["correlation_id"] for reply in producer.acknowledged} == {saga}
    assert all(reply.partition is None for reply in producer.acknowledged)  # the producer's partitioner picks


def test_a_poll_with_a_command_twice_answers_both_with_the_first_reply() -> None:
    saga = str(uuid.uuid4())
    first = create_order(saga)
    producer = RecordingProducer()
    serve(simulator(), [records(first, dict(first))], producer)
    assert len(producer.acknowledged) == 2
    assert producer.acknowledged[0].value == producer.acknowledged[1].value


def test_duplicate_publishes_every_reply_twice() -> None:
    producer = RecordingProducer()
    serve(simulator(duplicate=True), [records(create_order(str(uuid.uuid4())))], producer)
    assert [reply.value["type"] for reply in producer.acknowledged] == ["order.created", "order.created"]
    assert producer.acknowledged[0].value == producer.acknowledged[1].value


def test_a_stop_commits_every_answered_command() -> None:
    consumer = serve(
        simulator(), [records(create_order("s1")), records(create_order("s2"), first_offset=1)], RecordingProducer()
    )
    assert consumer.committed_offset() == 2


def test_offsets_are_committed_at_most_once_per_interval_not_once_per_poll() -> None:
    clock = Clock()
    stop = threading.Event()
    polls = [records(create_order(f"s{offset}"), first_offset=offset) for offset in range(4)]
    consumer = ScriptedConsumer(polls, stop)

    def poll(timeout_ms: int, next_poll: Callable[[int], list[InboundRecord]] = consumer.poll) -> list[InboundRecord]:
        clock.now += COMMIT_INTERVAL_SECONDS / 3
        return next_poll(timeout_ms)

    consumer.poll = poll  # type: ignore[method-assign]  # each poll takes a third of the interval
    simulator(clock=clock).serve(consumer, RecordingProducer(), stop)
    assert len(consumer.commits) < len(polls)
    assert consumer.committed_offset() == 4


def test_a_command_whose_reply_the_broker_refused_is_not_committed() -> None:
    sagas = [str(uuid.uuid4()) for _ in range(3)]
    producer = RecordingProducer(refuse=lambda reply: reply["correlation_id"] == sagas[1])
    sim = simulator()
    stop = threading.Event()
    consumer = ScriptedConsumer(
        [records(create_order(sagas[0])), records(*map(create_order, sagas[1:]), first_offset=1)], stop
    )
    with pytest.raises(KafkaUnavailable, match="publishing replies"):
        sim.serve(consumer, producer, stop)
    assert consumer.committed_offset() == 1  # the first poll's command only


def test_after_a_refusal_mid_poll_each_command_is_answered_once_with_its_first_replies() -> None:
    platform = PlatformParticipants(Knobs(user_skips_earlier=False))
    sim = simulator(platform)
    sagas = [str(uuid.uuid4()) for _ in range(3)]
    polled = records(*map(create_order, sagas))
    refusing = RecordingProducer(refuse=lambda reply: reply["correlation_id"] == sagas[1])
    stop = threading.Event()
    first = ScriptedConsumer([polled], stop)
    with pytest.raises(KafkaUnavailable):
        sim.serve(first, refusing, stop)
    # Reconnected: the consumer reads again from the last commit.
    again = RecordingProducer()
    second = serve(sim, [polled[first.committed_offset() :]], again)

    taken = refusing.acknowledged + again.acknowledged
    assert sorted(reply.value["correlation_id"] for reply in taken) == sorted(sagas)  # none lost, none twice
    assert again.acknowledged[0].value == refusing.refused[0].value  # the same reply, not a new one
    orders = [row for row in platform.ledger.rows() if row.kind is ResourceKind.ORDER]
    assert len(orders) == 3  # each create_order was processed once
    assert second.committed_offset() == 3


def test_a_command_read_again_with_other_content_at_the_same_offset_is_a_new_command() -> None:
    # A broker that lost its topics (in-memory Tansu restarted) numbers records from 0 again.
    sim = simulator()
    stop = threading.Event()
    producer = RecordingProducer(refuse=lambda reply: True)
    with pytest.raises(KafkaUnavailable):
        sim.serve(ScriptedConsumer([records(create_order("old"))], stop), producer, stop)
    again = RecordingProducer()
    serve(sim, [records(create_order("new"))], again)
    assert [reply.value["correlation_id"] for reply in again.acknowledged] == ["new"]


def test_a_producer_that_cannot_take_a_reply_is_a_broker_problem() -> None:
    class Blocked(RecordingProducer):
        def send(self, topic: str, *, value: bytes, key: bytes | None = None, partition: int | None = None) -> Future:
            raise KafkaTimeoutError("no metadata within max_block_ms")

    stop = threading.Event()
    with pytest.raises(KafkaUnavailable, match="no metadata"):
        simulator().serve(ScriptedConsumer([records(create_order("s"))], stop), Blocked(), stop)


def test_the_platform_profile_publishes_unkeyed_on_a_partition_of_the_topic() -> None:
    producer = RecordingProducer()
    serve(simulator(PlatformParticipants(Knobs(user_skips_earlier=False))), [records(create_order("s1"))], producer)
    [reply] = producer.acknowledged
    assert reply.key is None
    assert reply.partition in {0, 1, 2, 3}
    assert "message_id" not in reply.value


def test_late_replies_the_broker_refused_are_sent_after_reconnecting() -> None:
    now = [datetime(2026, 12, 8, 12, 0, tzinfo=UTC)]
    platform = PlatformParticipants(
        Knobs(slow=Knob.of("order"), slow_by=timedelta(seconds=1), user_skips_earlier=False), clock=lambda: now[0]
    )
    sim = simulator(platform)
    serve(sim, [records(create_order("s1"))], RecordingProducer())  # held back: nothing yet
    now[0] += timedelta(seconds=2)
    refusing = RecordingProducer(refuse=lambda reply: True)
    stop = threading.Event()
    with pytest.raises(KafkaUnavailable):
        sim.serve(ScriptedConsumer([[]], stop), refusing, stop)
    again = RecordingProducer()
    serve(sim, [], again)
    assert [reply.value["type"] for reply in again.acknowledged] == ["order.created"]
    assert again.acknowledged[0].value == refusing.refused[0].value
    serve(sim, [], (quiet := RecordingProducer()))
    assert quiet.acknowledged == []  # taken once, not sent again


def test_a_broker_error_while_flushing_at_stop_is_a_broker_problem() -> None:
    class Unflushable(RecordingProducer):
        def flush(self, timeout: float | None = None) -> None:
            raise KafkaError("flush timed out")

    stop = threading.Event()
    with pytest.raises(KafkaUnavailable):
        simulator().serve(ScriptedConsumer([records(create_order("s"))], stop), Unflushable(), stop)
