"""`saga simulate --transport kafka`: the four participant services over Kafka.

Consumes the four command topics in its own consumer group and answers each
command on its participant's event topic, keyed by the saga id, as a real
participant would. Like one, it answers a re-sent command (same message_id) with
the reply it gave the first time. Options make it misbehave on purpose: a failing
or silent step, a delay, every reply published twice.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import signal
import threading
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import TextIO

from kafka import KafkaProducer
from kafka.errors import KafkaError
from kafka.producer.future import FutureRecordMetadata

from saga.adapters.kafka_consumer import InboundRecord, KafkaRecordConsumer, KafkaUnavailable
from saga.adapters.kafka_publisher import await_acknowledgement, create_producer, ensure_topics
from saga.adapters.simulated_participants import SimulatedParticipants
from saga.adapters.simulation_profiles import DefaultProfile, ParticipantProfile
from saga.domain.messages import COMMANDS, JsonObject, Participant
from saga.entrypoints.config import ConfigError, KafkaSettings, Settings
from saga.service_layer.backoff import Backoff

log = logging.getLogger(__name__)

DEFAULT_GROUP_ID = "create-order-saga-simulator"
POLL_TIMEOUT_MS = 200


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

    def command_topics(self) -> list[str]:
        return [self._settings.command_topic(participant) for participant in self._participants.kafka_participants]

    def run(self, stop: threading.Event) -> None:
        backoff = Backoff(self._settings.retry_backoff_max_ms / 1000)
        topics_ready = False
        while not stop.is_set():
            consumer: KafkaRecordConsumer | None = None
            producer: KafkaProducer | None = None
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
                self._serve(consumer, producer, stop)
            except KafkaUnavailable as error:
                pause = backoff.next_pause()
                log.warning("simulator: %s; reconnecting in %.1fs", error, pause)
                stop.wait(pause)
            finally:
                if producer is not None:
                    producer.close(timeout=5)
                if consumer is not None:
                    consumer.close()

    def _serve(self, consumer: KafkaRecordConsumer, producer: KafkaProducer, stop: threading.Event) -> None:
        announced = False
        while not stop.is_set():
            records = consumer.poll(POLL_TIMEOUT_MS)
            if not announced and consumer.assignment():
                log.info("simulator ready: %s as group %s", ", ".join(self.command_topics()), self._group_id)
                announced = True
            late = self._participants.release()
            if late:
                self._publish(producer, late)
            if not records:
                if late and self._after_batch is not None:
                    self._after_batch()
                continue
            if self._delay_seconds and stop.wait(self._delay_seconds):
                return  # stopping: the batch stays uncommitted and is read again next time
            self._answer(producer, records)
            consumer.commit(records)
            if self._after_batch is not None:
                self._after_batch()

    def _answer(self, producer: KafkaProducer, records: Sequence[InboundRecord]) -> None:
        commands = [command for record in records if (command := self._command(record)) is not None]
        replies = [
            reply for command in self._participants.shuffled(commands) for reply in self._participants.handle(command)
        ]
        self._publish(producer, [reply for reply in replies for _ in range(self._copies)])

    def _publish(self, producer: KafkaProducer, replies: Sequence[JsonObject]) -> None:
        """Publishes replies on their participant's event topic: keyed by saga id, or (as the
        platform's services do) without a key, on any partition."""
        pending: list[FutureRecordMetadata] = []
        try:
            for reply in replies:
                participant = Participant(str(reply["type"]).split(".")[0])
                topic = self._settings.topics[f"{participant.value}_events"]
                value = json.dumps(reply, allow_nan=False).encode()
                if self._participants.keyed_replies:
                    pending.append(producer.send(topic, value=value, key=str(reply["correlation_id"]).encode()))
                else:
                    partitions = sorted(producer.partitions_for(topic) or {0})
                    pending.append(producer.send(topic, value=value, partition=self._random.choice(partitions)))
            for future in pending:
                await_acknowledgement(future, self._settings.delivery_timeout_ms / 1000 + 1.0)
        except KafkaError as error:
            raise KafkaUnavailable(f"publishing replies: {error}") from error

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
            self._received_log.flush()
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
