"""The four participants over Kafka, misbehaving on a seeded plan, and recording every command they got.

Each saga's plan (which step fails, which stays silent, which compensation is
rejected once) is drawn from the run's seed and the order's index, which the
participants read from `customer_id` (`torture-<index>-<attempt>`). Replies are
delayed (some past the step's deadline), duplicated, published without a key (so
they land on any partition, at any orchestrator) and reordered within a batch.
A re-sent command (same `message_id`) is answered as the first time, as a
well-behaved participant does.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import random
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass

from kafka import KafkaProducer
from kafka.errors import KafkaError

from saga.adapters.kafka_consumer import InboundRecord, KafkaRecordConsumer, KafkaUnavailable
from saga.adapters.kafka_publisher import create_producer
from saga.adapters.kafka_settings import KafkaSettings
from saga.adapters.simulated_participants import ACTION_COMMAND, SimulatedParticipants
from saga.domain.messages import COMMANDS, JsonObject, Participant

log = logging.getLogger(__name__)

STEP_ACTIONS = ("CREATE_ORDER", "GET_PAYMENT_INFO", "AUTHORIZE_PAYMENT", "UPDATE_ORDER_STATUS", "START_TIMER")
COMPENSATION_ACTIONS = ("REVERT_PAYMENT", "CANCEL_ORDER")
ACTION_OF_COMMAND = {command: action for action, command in ACTION_COMMAND.items()}
CUSTOMER = re.compile(r"torture-(\d+)-")


@dataclass(frozen=True)
class SagaPlan:
    """How the participants treat one order's saga."""

    fail: str | None = None
    """A step answered with its failure event."""
    silent: str | None = None
    """A step never answered: it fails by deadline."""
    reject_once: str | None = None
    """A compensation rejected the first time (the saga re-sends it with backoff)."""
    cancel_after: float | None = None
    """Seconds after its 202 when the client asks to cancel it."""


def plan_for(seed: int, index: int) -> SagaPlan:
    """The plan of order `index` in a run seeded `seed`: the same every time."""
    rng = random.Random(f"{seed}:plan:{index}")
    roll = rng.random()
    fail = silent = reject_once = None
    if roll < 0.12:
        fail = rng.choice(STEP_ACTIONS)
    elif roll < 0.15:
        silent = rng.choice(STEP_ACTIONS)
    if rng.random() < 0.05:
        reject_once = rng.choice(COMPENSATION_ACTIONS)
    cancel_after = rng.uniform(0.0, 1.5) if rng.random() < 0.04 else None
    return SagaPlan(fail, silent, reject_once, cancel_after)


@dataclass(frozen=True)
class Chaos:
    """Shares of replies misbehaving in each way."""

    delayed: float = 0.10
    """Delayed 0.2-2 s."""
    late: float = 0.04
    """Delayed past the step's deadline (the command is re-sent meanwhile)."""
    duplicated: float = 0.08
    unkeyed: float = 0.30
    deadline_seconds: float = 3.0


class TortureParticipants:
    """Consumes the command topics in group `group_id` and answers on the event topics."""

    def __init__(self, settings: KafkaSettings, group_id: str, seed: int, chaos: Chaos) -> None:
        self._settings = settings
        self._group_id = group_id
        self._seed = seed
        self._chaos = chaos
        self._rng = random.Random(f"{seed}:participants")
        self._normal = SimulatedParticipants()
        self._failing = {action: SimulatedParticipants(fail_step=action) for action in ACTION_COMMAND}
        self._plans: dict[str, SagaPlan] = {}
        self._first_message: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()
        self._outgoing: list[tuple[float, int, str, bytes | None, bytes]] = []
        self._sequence = itertools.count()
        self.received: Counter[str] = Counter()
        """How many times each command message_id reached a participant."""
        self.counts: Counter[str] = Counter()
        self.ready = threading.Event()

    def run(self, stop: threading.Event) -> None:
        """Consumes and answers until `stop`; reconnects after broker trouble."""
        publisher = threading.Thread(target=self._publish_loop, args=(stop,), name="participants-out", daemon=True)
        publisher.start()
        topics = [self._settings.command_topic(participant) for participant in Participant]
        while not stop.is_set():
            consumer: KafkaRecordConsumer | None = None
            try:
                consumer = KafkaRecordConsumer(self._settings, topics, self._group_id, "torture-participants")
                while not stop.is_set():
                    records = consumer.poll(200)
                    if consumer.assignment():
                        self.ready.set()
                    if records:
                        self._answer(records)
                        consumer.commit(records)
            except KafkaUnavailable as error:
                log.warning("participants: %s; reconnecting", error)
                stop.wait(0.5)
            finally:
                if consumer is not None:
                    consumer.close()
        publisher.join(10)

    def _answer(self, records: list[InboundRecord]) -> None:
        # One poll's replies leave together, shuffled: reordered within the batch.
        batch_at = time.monotonic()
        for record in records:
            try:
                command = json.loads(record.value or b"")
            except ValueError:
                continue
            if not isinstance(command, dict) or command.get("type") not in COMMANDS:
                continue
            message_id = str(command.get("message_id"))
            with self._lock:
                self.received[message_id] += 1
            reply = self._reply(command)
            if reply is None:
                continue
            topic = self._settings.topics[f"{COMMANDS[str(command['type'])].participant.value}_events"]
            value = json.dumps(reply, allow_nan=False).encode()
            key = None if self._rng.random() < self._chaos.unkeyed else str(reply["correlation_id"]).encode()
            self.counts["replies"] += 1
            self.counts["unkeyed"] += key is None
            due = batch_at + self._delay()
            self._schedule(due, topic, key, value)
            if self._rng.random() < self._chaos.duplicated:
                self.counts["duplicated"] += 1
                self._schedule(due + self._rng.uniform(0.0, 1.0), topic, key, value)

    def _delay(self) -> float:
        roll = self._rng.random()
        if roll < self._chaos.late:
            self.counts["late"] += 1
            return self._rng.uniform(1.0, 1.5) * self._chaos.deadline_seconds
        if roll < self._chaos.late + self._chaos.delayed:
            self.counts["delayed"] += 1
            return self._rng.uniform(0.2, 2.0)
        return 0.0

    def _reply(self, command: JsonObject) -> JsonObject | None:
        saga_id = str(command.get("correlation_id"))
        command_type = str(command["type"])
        action = ACTION_OF_COMMAND[command_type]
        message_id = str(command.get("message_id"))
        with self._lock:
            if command_type == "create_order" and saga_id not in self._plans:
                payload = command.get("payload")
                customer = str(payload.get("customer_id", "")) if isinstance(payload, dict) else ""
                found = CUSTOMER.match(customer)
                self._plans[saga_id] = plan_for(self._seed, int(found.group(1))) if found else SagaPlan()
            plan = self._plans.get(saga_id, SagaPlan())
            first = self._first_message.setdefault((saga_id, action), message_id)
        if plan.silent == action:
            self.counts["silent"] += 1
            return None
        if plan.fail == action or (plan.reject_once == action and message_id == first):
            self.counts["failures"] += 1
            return self._failing[action].handle(command)
        return self._normal.handle(command)

    def _schedule(self, due: float, topic: str, key: bytes | None, value: bytes) -> None:
        with self._lock:
            heapq.heappush(self._outgoing, (due, next(self._sequence), topic, key, value))

    def _publish_loop(self, stop: threading.Event) -> None:
        producer: KafkaProducer | None = None
        while not stop.is_set():
            with self._lock:
                now = time.monotonic()
                due = []
                while self._outgoing and self._outgoing[0][0] <= now:
                    due.append(heapq.heappop(self._outgoing))
            if not due:
                stop.wait(0.01)
                continue
            if len(due) > 1:
                self._rng.shuffle(due)
                self.counts["reordered_batches"] += 1
            try:
                if producer is None:
                    producer = create_producer(self._settings, "torture-participants")
                futures = [producer.send(topic, value=value, key=key) for _, _, topic, key, value in due]
                producer.flush(timeout=self._settings.delivery_timeout_ms / 1000 + 1)
                for future in futures:
                    future.get(timeout=0)  # type: ignore[no-untyped-call]
            except KafkaError as error:
                # The broker is paused or gone: these replies go out again later (duplicates are harmless).
                log.warning("participants: replies not published (%s); retrying", error)
                self.counts["publish_retries"] += 1
                retry_at = time.monotonic() + 0.5
                with self._lock:
                    for _, _, topic, key, value in due:
                        heapq.heappush(self._outgoing, (retry_at, next(self._sequence), topic, key, value))
                if producer is not None:
                    producer.close(timeout=1)
                    producer = None
                stop.wait(0.5)
        if producer is not None:
            producer.close(timeout=2)

    def pending_replies(self) -> int:
        with self._lock:
            return len(self._outgoing)
