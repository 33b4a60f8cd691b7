"""`saga simulate --transport kafka`: the four participant services over Kafka.

Consumes the four command topics in its own consumer group and answers each
command on its participant's event topic, keyed by the saga id, as a real
participant would. Like one, it answers a re-sent command (same message_id) with
the reply it gave the first time. Options make it misbehave on purpose: a failing
or silent step, a delay, every reply published twice.

It shares the machine with the orchestrator in every benchmark, so it spends as
little as it can per command: a poll's commands are answered together, their
replies handed to the producer at once and not waited for one by one, and the
offsets of answered commands committed at most every `COMMIT_INTERVAL_SECONDS`.
A command is answered once: when the broker refuses a reply, the commands not yet
committed are read again after reconnecting, and each gets the replies it was
given the first time that the broker has not taken yet, never new ones.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TextIO

from kafka.errors import KafkaError
from kafka.future import Future

from saga.adapters.kafka_consumer import InboundRecord, KafkaRecordConsumer, KafkaUnavailable
from saga.adapters.kafka_publisher import create_producer, ensure_topics
from saga.adapters.simulated_participants import SimulatedParticipants
from saga.adapters.simulation_profiles import DefaultProfile, ParticipantProfile
from saga.domain.messages import COMMANDS, JsonObject, Participant
from saga.entrypoints.config import ConfigError, KafkaSettings, Settings
from saga.service_layer.backoff import Backoff

log = logging.getLogger(__name__)

DEFAULT_GROUP_ID = "create-order-saga-simulator"
POLL_TIMEOUT_MS = 200
COMMIT_INTERVAL_SECONDS = 0.5
"""Longest wait before the offsets of answered commands are committed. A commit per poll
cost the simulator more than its answers; a clean stop commits all answered commands,
a crash answers at most this much again after a restart."""

REMEMBERED_ANSWERS = 100_000
"""Uncommitted commands whose answers are kept; past it the oldest are forgotten."""

_ENCODER = json.JSONEncoder(allow_nan=False)
"""json.dumps(reply, allow_nan=False) without building an encoder per reply."""

RecordKey = tuple[str, int, int]
"""A command record's topic, partition and offset."""


class CommandSource(Protocol):
    """What the simulator needs of its consumer (`KafkaRecordConsumer`)."""

    def poll(self, timeout_ms: int) -> list[InboundRecord]: ...

    def commit(self, done: Sequence[InboundRecord]) -> None: ...

    def assignment(self) -> list[str]: ...


class ReplySink(Protocol):
    """What the simulator needs of its producer (kafka-python's `KafkaProducer`)."""

    def send(self, topic: str, *, value: bytes, key: bytes | None = None, partition: int | None = None) -> Future: ...

    def partitions_for(self, topic: str) -> set[int]: ...

    def flush(self, timeout: float | None = None) -> None: ...


@dataclass
class _Reply:
    """One reply record: its topic, key (None: unkeyed) and bytes, and its send once handed to the producer."""

    topic: str
    key: bytes | None
    value: bytes
    sent: Future | None = None

    @property
    def taken(self) -> bool:
        """The broker acknowledged it."""
        return self.sent is not None and self.sent.succeeded()

    @property
    def to_send(self) -> bool:
        """Never handed over, or refused: it must be sent (again)."""
        return self.sent is None or self.sent.failed()


@dataclass
class _Answer:
    """What one command record was answered with; `fingerprint` tells a record read again
    from another one at the same offset (a broker that lost its topics)."""

    fingerprint: int
    replies: list[_Reply]


@dataclass
class _Batch:
    """Commands of one poll (none for replies released late) and the replies sent for them."""

    records: list[InboundRecord]
    replies: list[_Reply] = field(default_factory=list)

    def settled(self) -> bool:
        return all(reply.sent is not None and reply.sent.is_done for reply in self.replies)

    def refusal(self) -> BaseException | None:
        return next((reply.sent.exception for reply in self.replies if reply.sent and reply.sent.failed()), None)


def _record_key(record: InboundRecord) -> RecordKey:
    return (record.topic, record.partition, record.offset)


class KafkaParticipantSimulator:
    def __init__(
        self,
        settings: KafkaSettings,
        participants: ParticipantProfile,
        group_id: str = DEFAULT_GROUP_ID,
        delay_ms: int = 0,
        duplicate: bool = False,
        received_log: TextIO | None = None,
        after_batch: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._participants = participants
        self._after_batch = after_batch
        """Called after each batch of commands is answered (the platform profile writes its ledger)."""
        self._random = random.Random()
        self._group_id = group_id
        self._delay_seconds = delay_ms / 1000
        self._copies = 2 if duplicate else 1
        self._received_log = received_log
        self._clock = clock
        self._event_topics = {
            participant.value: settings.topics[f"{participant.value}_events"] for participant in Participant
        }
        self._partitions: dict[str, list[int]] = {}
        self._answers: dict[RecordKey, _Answer] = {}
        """Commands answered and not committed yet: read again, they get these replies, not new ones."""
        self._unsettled: deque[_Batch] = deque()
        """Batches whose replies the broker has not all acknowledged yet, oldest first."""
        self._answered: list[InboundRecord] = []
        """Commands whose replies the broker acknowledged, to commit."""
        self._late: list[_Reply] = []
        """Late replies the broker has not acknowledged, to send again after reconnecting."""
        self._committed_at = clock()

    def command_topics(self) -> list[str]:
        return [self._settings.command_topic(participant) for participant in self._participants.kafka_participants]

    def run(self, stop: threading.Event) -> None:
        backoff = Backoff(self._settings.retry_backoff_max_ms / 1000)
        topics_ready = False
        while not stop.is_set():
            consumer: KafkaRecordConsumer | None = None
            producer = None
            try:
                topics_ready = topics_ready or ensure_topics(self._settings)
                if not topics_ready:
                    raise KafkaUnavailable(f"no broker answered at {self._settings.bootstrap_servers}")
                consumer = KafkaRecordConsumer(
                    self._settings, self.command_topics(), self._group_id, client_id="create-order-saga-simulator"
                )
                try:
                    producer = create_producer(self._settings, "create-order-saga-simulator")
                except KafkaError as error:
                    raise KafkaUnavailable(f"connecting the producer: {error}") from error
                backoff.reset()
                self.serve(consumer, producer, stop)
            except KafkaUnavailable as error:
                pause = backoff.next_pause()
                log.warning("simulator: %s; reconnecting in %.1fs", error, pause)
                stop.wait(pause)
            finally:
                if producer is not None:
                    producer.close(timeout=5)
                if consumer is not None:
                    consumer.close()

    def serve(self, consumer: CommandSource, producer: ReplySink, stop: threading.Event) -> None:
        """Answers commands until `stop` is set, then waits for the replies in flight and commits
        what was answered. Raises KafkaUnavailable when the broker refuses or does not take a reply;
        the commands answered until then are committed (when the broker still takes the commit), the
        others are read again by the next `serve`."""
        try:
            self._serve(consumer, producer, stop)
        finally:
            try:
                self._commit_answered(consumer)
            except KafkaUnavailable as error:
                log.warning("simulator: answered commands not committed (%s); they are read again", error)
            self._unsettled.clear()  # their commands are read again; the replies they lack are sent then
            self._partitions.clear()

    def _serve(self, consumer: CommandSource, producer: ReplySink, stop: threading.Event) -> None:
        if self._late:
            again = _Batch([], [reply for reply in self._late if reply.to_send])
            self._send(producer, again.replies)
            self._unsettled.append(again)
        announced = False
        while not stop.is_set():
            records = consumer.poll(POLL_TIMEOUT_MS)
            if not announced and consumer.assignment():
                log.info("simulator ready: %s as group %s", ", ".join(self.command_topics()), self._group_id)
                announced = True
            late = [self._encoded(reply) for reply in self._participants.release()]
            if late:
                self._late.extend(late)
                self._send(producer, late)
                self._unsettled.append(_Batch([], late))
            if records:
                if self._delay_seconds and stop.wait(self._delay_seconds):
                    break  # stopping: the batch stays uncommitted and is read again next time
                self._unsettled.append(self._answer(producer, records))
            if (records or late) and self._after_batch is not None:
                self._after_batch()
            self._settle(consumer)
        try:
            producer.flush(timeout=self._settings.delivery_timeout_ms / 1000 + 1.0)
        except KafkaError as error:
            raise KafkaUnavailable(f"publishing replies: {error}") from error
        self._settle(consumer, commit_now=True)

    def _answer(self, producer: ReplySink, records: Sequence[InboundRecord]) -> _Batch:
        """Sends the replies of a poll's records: new commands are handled (in the order the
        profile handles them), commands read again get their first replies the broker lacks."""
        batch = _Batch(list(records))
        fresh: list[tuple[JsonObject, _Answer]] = []
        for record in records:
            fingerprint = hash(record.value)
            answer = self._answers.get(_record_key(record))
            if answer is not None and answer.fingerprint == fingerprint:
                batch.replies.extend(reply for reply in answer.replies if reply.to_send)
                continue
            answer = _Answer(fingerprint, [])
            self._answers[_record_key(record)] = answer
            if len(self._answers) > REMEMBERED_ANSWERS:  # commands another group member took over
                del self._answers[next(iter(self._answers))]
            command = self._command(record)
            if command is not None:
                fresh.append((command, answer))
        if self._received_log is not None and fresh:
            self._received_log.flush()
        answers = {id(command): answer for command, answer in fresh}
        for command in self._participants.shuffled([command for command, _ in fresh]):
            answer = answers[id(command)]
            for reply in self._participants.handle(command):
                encoded = self._encoded(reply)
                answer.replies.extend(
                    [encoded, *(_Reply(encoded.topic, encoded.key, encoded.value) for _ in range(self._copies - 1))]
                )
            batch.replies.extend(answer.replies)
        self._send(producer, batch.replies)
        return batch

    def _encoded(self, reply: JsonObject) -> _Reply:
        """A reply on its participant's event topic: keyed by saga id, or (as the platform's
        services publish) without a key, on any partition."""
        topic = self._event_topics[str(reply["type"]).partition(".")[0]]
        key = str(reply["correlation_id"]).encode() if self._participants.keyed_replies else None
        return _Reply(topic, key, _ENCODER.encode(reply).encode())

    def _send(self, producer: ReplySink, replies: Iterable[_Reply]) -> None:
        """Hands the replies to the producer without waiting for the broker; `_settle` checks them."""
        try:
            for reply in replies:
                if reply.key is not None:
                    reply.sent = producer.send(reply.topic, value=reply.value, key=reply.key)
                else:
                    partition = self._random.choice(self._partitions_of(producer, reply.topic))
                    reply.sent = producer.send(reply.topic, value=reply.value, partition=partition)
        except KafkaError as error:
            raise KafkaUnavailable(f"publishing replies: {error}") from error

    def _partitions_of(self, producer: ReplySink, topic: str) -> list[int]:
        partitions = self._partitions.get(topic)
        if partitions is None:
            partitions = self._partitions[topic] = sorted(producer.partitions_for(topic) or {0})
        return partitions

    def _settle(self, consumer: CommandSource, commit_now: bool = False) -> None:
        """Moves the batches the broker has acknowledged, oldest first, to the commands to commit,
        and commits them when `COMMIT_INTERVAL_SECONDS` passed. Raises KafkaUnavailable when it
        refused a reply."""
        while self._unsettled and self._unsettled[0].settled():
            refusal = self._unsettled[0].refusal()
            if refusal is not None:
                raise KafkaUnavailable(f"publishing replies: {type(refusal).__name__}: {refusal}")
            batch = self._unsettled.popleft()
            self._answered.extend(batch.records)
        if self._late:
            self._late = [reply for reply in self._late if not reply.taken]
        if commit_now or self._clock() - self._committed_at >= COMMIT_INTERVAL_SECONDS:
            self._commit_answered(consumer)

    def _commit_answered(self, consumer: CommandSource) -> None:
        self._committed_at = self._clock()
        if not self._answered:
            return
        done, self._answered = self._answered, []
        try:
            consumer.commit(done)
        finally:
            for record in done:
                self._answers.pop(_record_key(record), None)

    def _command(self, record: InboundRecord) -> JsonObject | None:
        try:
            command = json.loads(record.value or b"")
        except ValueError:
            log.warning("command %s is not JSON; skipped", record.source)
            return None
        if not isinstance(command, dict) or command.get("type") not in COMMANDS:
            log.warning("command %s is not one the participants know; skipped", record.source)
            return None
        if self._received_log is not None:
            self._received_log.write(f"{command.get('message_id')} {command['type']} {command.get('correlation_id')}\n")
        return command


def run_kafka_simulator(settings: Settings, args: argparse.Namespace) -> int:
    """Runs the simulator until SIGINT or SIGTERM, with the options of `saga simulate`.

    With `--profile platform` it also serves the timer's API and the ledger on `--port`.
    """
    platform = getattr(args, "profile", "default") == "platform"
    if platform:
        from saga.entrypoints.simulate_platform import platform_from_args

        simulation = platform_from_args(args)
        participants: ParticipantProfile = simulation
    else:
        try:
            participants = DefaultProfile(SimulatedParticipants(fail_step=args.fail_step, silent_step=args.silent_step))
        except ValueError as error:
            raise ConfigError(str(error)) from None
    if args.delay_ms < 0:
        raise ConfigError("--delay-ms must not be negative")
    http_only = {"--reject-step": args.reject_step, "--async": args.async_mode, "--flaky": args.flaky}
    given = [option for option, value in http_only.items() if value]
    if given:
        raise ConfigError(f"not available with --transport kafka: {', '.join(given)}")
    received_path: str | None = getattr(args, "received_log", None)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with ExitStack() as resources:
        received_log = (
            resources.enter_context(Path(received_path).open("a", encoding="utf-8")) if received_path else None
        )
        after_batch = None
        if platform:
            from saga.entrypoints.simulate_platform import create_platform_app, describe, serving

            base = resources.enter_context(serving(create_platform_app(simulation), args.host, args.port))
            resources.callback(simulation.ledger.flush)
            after_batch = simulation.ledger.flush
            log.info(
                "platform profile (%s): timer API at %s/StartTimer, ledger at %s/ledger",
                describe(simulation),
                base,
                base,
            )
        simulator = KafkaParticipantSimulator(
            settings.kafka,
            participants,
            group_id=getattr(args, "group_id", None) or DEFAULT_GROUP_ID,
            delay_ms=args.delay_ms,
            duplicate=bool(getattr(args, "duplicate", False)),
            received_log=received_log,
            after_batch=after_batch,
        )
        log.info("simulating the participants over kafka at %s", settings.kafka.bootstrap_servers)
        simulator.run(stop)
    return 0
