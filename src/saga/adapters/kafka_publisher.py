"""Commands to Kafka: one topic per participant, record key = saga id, value = the JSON envelope.

The producer is built on first use and rebuilt after any failed send, so the
service starts and takes orders while the broker is down: the commands wait in
the outbox and the relay sends them again once the broker answers.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Sequence

from kafka import KafkaAdminClient, KafkaProducer
from kafka.errors import (
    InvalidTopicError,
    KafkaError,
    MessageSizeTooLargeError,
    TopicAlreadyExistsError,
    TopicAuthorizationFailedError,
)
from kafka.producer.future import FutureRecordMetadata

from saga.adapters.envelope import encode_command
from saga.adapters.kafka_settings import KafkaSettings
from saga.domain.messages import Command
from saga.ports.messaging import CommandPublisher, Delivered, SendResult, Undelivered
from saga.ports.trace_context import trace_headers

log = logging.getLogger(__name__)

PROBE_TIMEOUT_SECONDS = 1.0
CLOSE_TIMEOUT_SECONDS = 5.0


def all_topics(settings: KafkaSettings) -> list[str]:
    """Every topic the saga uses: commands, events and the dead-letter topic."""
    return [*settings.topics.values(), settings.dead_letter_topic]


def create_producer(settings: KafkaSettings, client_id: str) -> KafkaProducer:
    """A producer that waits for every in-sync replica. Raises KafkaError when no broker answers."""
    return KafkaProducer(
        bootstrap_servers=settings.bootstrap_servers.split(","),
        client_id=client_id,
        acks="all",
        linger_ms=settings.linger_ms,
        bootstrap_timeout_ms=settings.connect_timeout_ms,
        # A send waits this long for metadata of a topic it has not seen; beyond it the broker is down.
        max_block_ms=settings.connect_timeout_ms,
        request_timeout_ms=settings.request_timeout_ms,
        delivery_timeout_ms=settings.delivery_timeout_ms,
        reconnect_backoff_max_ms=settings.retry_backoff_max_ms,
        # The client's own statistics (kept on every request) are read by nothing here:
        # the saga's metrics are its own.
        metrics_enabled=False,
        **settings.client_options(),
    )


def ensure_topics(settings: KafkaSettings) -> bool:
    """Creates the saga's topics that do not exist yet, with `settings.partitions` partitions.

    Returns False when the broker could not be reached (try again later), True once it
    answered. A topic the broker refuses to create is logged, not retried: whatever
    stops it (a policy, permissions) will not change by asking again.
    """
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=settings.bootstrap_servers.split(","),
            client_id="create-order-saga-admin",
            bootstrap_timeout_ms=settings.connect_timeout_ms,
            request_timeout_ms=settings.request_timeout_ms,
            **settings.client_options(),
        )
    except KafkaError as error:
        log.warning("kafka unreachable at %s, topics not checked: %s", settings.bootstrap_servers, error)
        return False
    try:
        existing = set(admin.list_topics())
        missing = [topic for topic in dict.fromkeys(all_topics(settings)) if topic not in existing]
        if not missing:
            return True
        spec = {"num_partitions": settings.partitions, "replication_factor": settings.replication_factor}
        response = admin.create_topics({topic: dict(spec) for topic in missing}, raise_errors=False)
        for result in response["topics"]:
            if result["error_code"] == 0:
                log.info("created topic %s with %d partitions", result["name"], settings.partitions)
            elif result["error_code"] != TopicAlreadyExistsError.errno:
                log.error(
                    "kafka refused to create topic %s: error %s %s",
                    result["name"],
                    result["error_code"],
                    result["error_message"] or "",
                )
        return True
    except KafkaError as error:
        log.warning("kafka did not answer while creating topics: %s", error)
        return False
    finally:
        admin.close()


def await_acknowledgement(future: FutureRecordMetadata, timeout: float) -> None:
    """Waits for the broker to acknowledge a record. Raises KafkaError (KafkaTimeoutError after `timeout`)."""
    future.get(timeout=timeout)  # type: ignore[no-untyped-call]  # the stubs leave get() untyped


def bootstrap_probe(bootstrap_servers: str, timeout: float = PROBE_TIMEOUT_SECONDS) -> str | None:
    """None when one of the bootstrap servers accepts a TCP connection, else what went wrong.

    kafka-python 3.0's bootstrap_connected() is True only while a bootstrap is under
    way, so it cannot tell a healthy connection from a lost one.
    """
    failures = []
    for server in bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        host = host.strip("[]")  # an IPv6 literal is written [::1]:9092
        try:
            with socket.create_connection((host, int(port)), timeout=timeout):
                return None
        except (OSError, ValueError) as error:
            failures.append(f"{server.strip()}: {error}")
    return "; ".join(failures)


# Errors about one record that no amount of waiting for the broker will cure: they fail
# that send like a participant that stays down, so the saga's deadline decides.
RECORD_ERRORS = (MessageSizeTooLargeError, TopicAuthorizationFailedError, InvalidTopicError)


def _undelivered(error: KafkaError) -> Undelivered:
    return Undelivered(f"kafka send failed: {error!r}", transport_down=not isinstance(error, RECORD_ERRORS))


class KafkaCommandPublisher(CommandPublisher):
    def __init__(self, settings: KafkaSettings) -> None:
        self._settings = settings
        self._producer: KafkaProducer | None = None
        self._topics_ready = False
        self._last_failure: str | None = None
        # The relay publishes from one thread; the lock keeps close() and a second
        # relay from racing on the shared producer.
        self._lock = threading.Lock()

    def publish(self, commands: Sequence[Command]) -> list[SendResult]:
        if not commands:
            return []
        with self._lock:
            try:
                producer = self._connected_producer()
            except Exception as error:  # whatever stops the connection, the commands wait in the outbox
                self._last_failure = f"kafka unreachable: {error}"
                log.warning("%s; %d command(s) stay in the outbox", self._last_failure, len(commands))
                return [Undelivered(self._last_failure, transport_down=True) for _ in commands]
            results = self._send_all(producer, commands)
            failures = [
                result.reason for result in results if isinstance(result, Undelivered) and result.transport_down
            ]
            if failures:
                # A producer that lost its broker can keep failing after the broker is back
                # (the idempotent producer's id is gone, for one); start afresh next time.
                self._discard_producer()
                self._last_failure = failures[0]
            else:
                self._last_failure = None
            return results

    def healthy(self) -> str | None:
        unreachable = bootstrap_probe(self._settings.bootstrap_servers)
        if unreachable is not None:
            return f"kafka unreachable: {unreachable}"
        failure = self._last_failure
        if failure is not None:
            return f"kafka: last publish failed: {failure}"
        return None

    def close(self) -> None:
        with self._lock:
            if self._producer is not None:
                producer, self._producer = self._producer, None
                try:
                    producer.close(timeout=CLOSE_TIMEOUT_SECONDS)
                except KafkaError:
                    log.warning("kafka producer did not close cleanly", exc_info=True)

    def _connected_producer(self) -> KafkaProducer:
        if self._producer is None:
            if not self._topics_ready:
                self._topics_ready = ensure_topics(self._settings)
                if not self._topics_ready:
                    raise KafkaError(f"no broker answered at {self._settings.bootstrap_servers}")
            self._producer = create_producer(self._settings, "create-order-saga-orchestrator")
            log.info("kafka producer connected to %s", self._settings.bootstrap_servers)
        return self._producer

    def _send_all(self, producer: KafkaProducer, commands: Sequence[Command]) -> list[SendResult]:
        pending: list[FutureRecordMetadata | Undelivered] = []
        for index, command in enumerate(commands):
            try:
                pending.append(
                    producer.send(
                        self._settings.command_topic(command.participant),
                        value=encode_command(command),
                        key=command.saga_id.encode(),
                        headers=[
                            ("message_id", command.message_id.encode()),
                            ("type", command.type.encode()),
                            *(
                                (name, value.encode())
                                for name, value in trace_headers(command.saga_id, command.message_id).items()
                            ),
                        ],
                    )
                )
            except RECORD_ERRORS as error:
                pending.append(_undelivered(error))  # this record only; the rest may go
            except KafkaError as error:
                # send() blocks up to max_block_ms when the broker is gone; the rest would block too.
                pending.extend([_undelivered(error)] * (len(commands) - index))
                break
        # Every future resolves within delivery_timeout_ms; the margin covers the client's own timer.
        deadline = time.monotonic() + self._settings.delivery_timeout_ms / 1000 + 1.0
        if any(not isinstance(future, Undelivered) for future in pending):
            # The batch is complete: send it now rather than after linger_ms. Each record's
            # own outcome is read from its future below.
            with contextlib.suppress(KafkaError):
                producer.flush(timeout=self._settings.delivery_timeout_ms / 1000 + 1.0)
        results: list[SendResult] = []
        for future in pending:
            if isinstance(future, Undelivered):
                results.append(future)
                continue
            try:
                await_acknowledgement(future, max(deadline - time.monotonic(), 0.0))
            except KafkaError as error:
                results.append(_undelivered(error))
            else:
                results.append(Delivered())
        return results

    def _discard_producer(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            try:
                producer.close(timeout=0)
            except KafkaError:
                log.debug("a failed producer did not close cleanly", exc_info=True)
