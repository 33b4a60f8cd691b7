"""Records from Kafka topics in one consumer group, with offsets committed only when told.

A thin typed layer over kafka-python's KafkaConsumer: what drives it (the event
source, the simulator) decides when a record is done; nothing is auto-committed.
Every broker problem surfaces as KafkaUnavailable, so the caller has one thing to
catch before it reconnects.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from saga.adapters.kafka_publisher import await_acknowledgement, create_producer
from saga.adapters.kafka_settings import KafkaSettings

log = logging.getLogger(__name__)

CLOSE_TIMEOUT_MS = 5_000


class KafkaUnavailable(Exception):
    """The broker could not be reached or did not complete a request; retry after a pause."""


@contextmanager
def _broker_errors(doing: str) -> Iterator[None]:
    try:
        yield
    except KafkaError as error:
        raise KafkaUnavailable(f"{doing}: {type(error).__name__}: {error}") from error


@dataclass(frozen=True)
class InboundRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    leader_epoch: int

    def header(self, name: str) -> str | None:
        """The last header called `name`, as text; None when absent or not UTF-8."""
        for key, value in reversed(self.headers):
            if key == name:
                try:
                    return value.decode()
                except (UnicodeDecodeError, AttributeError):
                    return None
        return None

    @property
    def source(self) -> str:
        """Where the record came from, as logs and dead letters name it."""
        return f"{self.topic}/{self.partition}@{self.offset}"


def _offset_reset(value: str) -> Literal["earliest", "latest"]:
    return "latest" if value == "latest" else "earliest"


class KafkaRecordConsumer:
    """Subscribes `group_id` to `topics`. Raises KafkaUnavailable when no broker answers."""

    def __init__(self, settings: KafkaSettings, topics: Sequence[str], group_id: str, client_id: str) -> None:
        self._settings = settings
        self._client_id = client_id
        self._dead_letters: KafkaProducer | None = None
        self._uncommitted: dict[TopicPartition, OffsetAndMetadata] = {}
        with _broker_errors("connecting the consumer"):
            self._consumer = KafkaConsumer(
                *topics,
                bootstrap_servers=settings.bootstrap_servers.split(","),
                client_id=client_id,
                group_id=group_id,
                enable_auto_commit=False,
                auto_offset_reset=_offset_reset(settings.auto_offset_reset),
                session_timeout_ms=settings.session_timeout_ms,
                heartbeat_interval_ms=settings.heartbeat_interval_ms,
                fetch_max_wait_ms=settings.fetch_max_wait_ms,
                max_poll_records=settings.max_poll_records,
                request_timeout_ms=settings.request_timeout_ms,
                bootstrap_timeout_ms=settings.connect_timeout_ms,
                reconnect_backoff_max_ms=settings.retry_backoff_max_ms,
                metrics_enabled=False,  # the client's own statistics; the saga keeps its own
                **settings.client_options(),
            )

    def poll(self, timeout_ms: int) -> list[InboundRecord]:
        """The next records, each partition's in offset order; empty when none came within the timeout."""
        with _broker_errors("polling"):
            batches = self._consumer.poll(timeout_ms=timeout_ms)
        return [
            InboundRecord(
                record.topic,
                record.partition,
                record.offset,
                record.key,
                record.value,
                tuple(record.headers or ()),
                -1 if record.leader_epoch is None else record.leader_epoch,
            )
            for records in batches.values()
            for record in records
        ]

    def in_stable_group(self) -> bool:
        """True while this member has joined its group and the group is not rebalancing.

        An empty assignment is still a stable membership: a group with more members than
        partitions leaves some without any. kafka-python keeps this state on its group
        coordinator, which it does not expose; read defensively.
        """
        coordinator = getattr(self._consumer, "_coordinator", None)
        try:
            return bool(
                coordinator is not None
                and coordinator.coordinator_id is not None
                and coordinator.stable()
                and not coordinator.need_rejoin()
            )
        except (AttributeError, KafkaError):
            return False

    def assignment(self) -> list[str]:
        """The partitions this member holds now, as `topic/partition`; empty until the group is joined."""
        return sorted(f"{partition.topic}/{partition.partition}" for partition in self._consumer.assignment())

    def lag(self) -> dict[tuple[str, int], int]:
        """Records behind the high watermark on each partition held, by (topic, partition), as the
        last fetch reported it; partitions whose watermark or position is not known yet are left out.
        Only as true as the broker's watermark: the Tansu test broker reports the first offset of
        its last batch plus one, not the true end."""
        lags: dict[tuple[str, int], int] = {}
        for partition in self._consumer.assignment():
            try:
                highwater = self._consumer.highwater(partition)
                position = self._consumer.position(partition, timeout_ms=0) if highwater is not None else None
            except KafkaError:
                continue
            if highwater is not None and position is not None:
                lags[(partition.topic, partition.partition)] = max(highwater - position, 0)
        return lags

    def commit(self, done: Sequence[InboundRecord]) -> None:
        """Commits past the last record of each partition in `done`, so a restart resumes after them.

        The commit is sent without waiting for its answer, so the next poll need not wait a
        round trip; close() commits the latest offsets and waits. A commit lost in a crash only
        means the records are delivered again, which the inbox makes harmless.
        """
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        for record in done:
            offsets[TopicPartition(record.topic, record.partition)] = OffsetAndMetadata(
                record.offset + 1, "", record.leader_epoch
            )
        if offsets:
            self._uncommitted.update(offsets)
            with _broker_errors("committing offsets"):
                self._consumer.commit_async(dict(offsets), callback=self._committed)

    def _committed(self, offsets: Mapping[TopicPartition, OffsetAndMetadata], response: object) -> None:
        if isinstance(response, Exception):
            log.warning("offsets not committed (%s); the records may be delivered again", response)
            return
        for partition, offset in offsets.items():
            if self._uncommitted.get(partition) == offset:
                del self._uncommitted[partition]

    def flush_commits(self) -> None:
        """Commits the offsets still in flight and waits for the broker's answer."""
        if self._uncommitted:
            with _broker_errors("committing offsets"):
                self._consumer.commit(dict(self._uncommitted))
            self._uncommitted.clear()

    def rewind(self, undone: Sequence[InboundRecord]) -> None:
        """Makes the next poll return `undone` again: each partition restarts at its first undone record."""
        first: dict[TopicPartition, int] = {}
        for record in undone:
            partition = TopicPartition(record.topic, record.partition)
            first[partition] = min(first.get(partition, record.offset), record.offset)
        with _broker_errors("seeking back"):
            for partition, offset in first.items():
                self._consumer.seek(partition, offset)

    def dead_letter(self, record: InboundRecord, topic: str, reason: str) -> None:
        """Forwards the record unchanged (key, value, headers) to `topic` with why and where it came from.

        Returns once the broker acknowledged it; raises KafkaUnavailable otherwise.
        """
        headers = [
            *record.headers,
            ("dlq_reason", reason.encode()),
            ("dlq_topic", record.topic.encode()),
            ("dlq_partition", str(record.partition).encode()),
            ("dlq_offset", str(record.offset).encode()),
        ]
        with _broker_errors("sending to the dead-letter topic"):
            if self._dead_letters is None:
                self._dead_letters = create_producer(self._settings, f"{self._client_id}-dead-letters")
            future = self._dead_letters.send(topic, value=record.value, key=record.key, headers=headers)
            await_acknowledgement(future, self._settings.delivery_timeout_ms / 1000 + 1.0)

    def close(self) -> None:
        """Commits what is done, leaves the group (so its partitions move at once, not after
        the session times out) and closes the clients."""
        try:
            self.flush_commits()
        except KafkaUnavailable:
            log.warning("offsets not committed at close; the records may be delivered again", exc_info=True)
        try:
            self._consumer.close(autocommit=False, timeout_ms=CLOSE_TIMEOUT_MS)
        except KafkaError:
            log.warning("kafka consumer did not close cleanly", exc_info=True)
        if self._dead_letters is not None:
            try:
                self._dead_letters.close(timeout=CLOSE_TIMEOUT_MS / 1000)
            except KafkaError:
                log.warning("dead-letter producer did not close cleanly", exc_info=True)
