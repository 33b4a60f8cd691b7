"""Word between processes through PostgreSQL LISTEN/NOTIFY: a command committed without a hold
reaches a relay that listens long before that relay's next poll."""

from __future__ import annotations

import queue
import select
import threading
from collections.abc import Iterator, Sequence
from functools import partial

import psycopg2
import pytest
from sqlalchemy import Engine
from tests.unit.persistence_contract import make_command, new_id

from saga.adapters.clock import SystemClock
from saga.adapters.sql import SqlAlchemyUnitOfWork, create_engine_from_url
from saga.adapters.sql.migrations import upgrade
from saga.adapters.sql.outbox_changes import CHANNEL, PostgresOutboxChanges, outbox_changes_for
from saga.domain.messages import Command
from saga.domain.policy import SagaPolicy
from saga.entrypoints.worker import BackgroundWorker
from saga.ports.messaging import CommandPublisher, Delivered, SendResult
from saga.ports.persistence import StorageUnavailable
from saga.service_layer.metrics import Metrics
from saga.service_layer.orchestrator import SagaOrchestrator
from saga.service_layer.relay import OutboxRelay
from saga.service_layer.relay_queue import RelayQueue

pytestmark = pytest.mark.postgres

POLL_SECONDS = 60.0
"""The relay's poll interval in these tests: nothing may wait for it."""
WITHIN_SECONDS = 5.0
"""A generous bound for a notification on a loaded machine; a tenth of the poll."""


class Published(CommandPublisher):
    def __init__(self) -> None:
        self.commands: queue.Queue[Command] = queue.Queue()

    def publish(self, commands: Sequence[Command]) -> list[SendResult]:
        for command in commands:
            self.commands.put(command)
        return [Delivered() for _ in commands]


@pytest.fixture
def engine(fresh_database_url: str) -> Iterator[Engine]:
    upgrade(fresh_database_url)
    engine = create_engine_from_url(fresh_database_url)
    yield engine
    engine.dispose()


def test_a_transaction_that_adds_commands_due_at_once_notifies_when_it_commits(engine: Engine) -> None:
    listener = psycopg2.connect(engine.url.render_as_string(hide_password=False).replace("+psycopg2", ""))
    listener.autocommit = True
    listener.cursor().execute(f"LISTEN {CHANNEL}")

    def notified() -> bool:
        select.select([listener], [], [], 0.5)
        listener.poll()
        seen = bool(listener.notifies)
        listener.notifies.clear()
        return seen

    try:
        uow_factory = partial(SqlAlchemyUnitOfWork, engine)
        with uow_factory() as uow:
            uow.outbox.add([make_command(new_id())])
            assert not notified()  # not before the commit
            uow.commit()
        assert notified()
        with uow_factory() as uow:
            uow.outbox.add([make_command(new_id())])  # rolled back: no word
        with uow_factory() as uow:
            uow.outbox.add([make_command(new_id())], hold_until=make_command(new_id()).timestamp)
            uow.commit()  # held for its own process's relay: no word either
        assert not notified()
    finally:
        listener.close()


def test_a_command_another_process_commits_is_sent_before_the_relay_polls(
    engine: Engine, fresh_database_url: str
) -> None:
    # The relay's process: its relay polls once a minute and listens.
    published = Published()
    clock, metrics = SystemClock(), Metrics()
    relay_queue = RelayQueue()
    uow_factory = partial(SqlAlchemyUnitOfWork, engine)
    own = SagaOrchestrator(uow_factory, clock, SagaPolicy(), metrics, dispatch=relay_queue)
    relay = OutboxRelay(uow_factory, published, own, clock, metrics, dispatch=relay_queue)
    changes = outbox_changes_for(engine)
    assert isinstance(changes, PostgresOutboxChanges)
    worker = BackgroundWorker(relay, own, relay_queue.ready, [], POLL_SECONDS, POLL_SECONDS, outbox_changes=changes)
    # Another process, with its own engine and no relay: it writes its commands due at once.
    other_engine = create_engine_from_url(fresh_database_url)
    other = SagaOrchestrator(partial(SqlAlchemyUnitOfWork, other_engine), clock, SagaPolicy(), Metrics())
    order = {"foodItems": [{"name": "Burger", "price": "12.99", "quantity": 1}], "deliveryLocation": "North"}
    worker.start(relay_only=True)
    try:
        first = other.start("cust_1", order)
        assert published.commands.get(timeout=WITHIN_SECONDS).saga_id == first.id
        # By now the listener is listening and its first look at the outbox is done:
        # only the notification can bring the next one in time.
        second = other.start("cust_2", order)
        assert published.commands.get(timeout=WITHIN_SECONDS).saga_id == second.id
    finally:
        worker.stop()
        other_engine.dispose()
    assert published.commands.empty()


def test_the_listener_stops_when_asked(engine: Engine) -> None:
    stop = threading.Event()
    calls: list[str] = []
    listening = threading.Thread(target=PostgresOutboxChanges(engine).listen, args=(stop, lambda: calls.append("")))
    listening.start()
    stop.set()
    listening.join(timeout=5)
    assert not listening.is_alive()


def test_a_listener_whose_connection_is_lost_says_so(engine: Engine) -> None:
    stop = threading.Event()
    listening_now = threading.Event()
    raised: list[BaseException] = []

    def listen() -> None:
        try:
            PostgresOutboxChanges(engine).listen(stop, listening_now.set)
        except BaseException as error:  # read in the test's thread below
            raised.append(error)

    listening = threading.Thread(target=listen)
    listening.start()
    try:
        assert listening_now.wait(WITHIN_SECONDS)
        with engine.connect() as connection:
            terminated = connection.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                f" WHERE datname = current_database() AND query = 'LISTEN {CHANNEL}'"
            ).all()
        assert len(terminated) == 1
        listening.join(timeout=WITHIN_SECONDS)
    finally:
        stop.set()
        listening.join(timeout=5)
    assert len(raised) == 1 and isinstance(raised[0], StorageUnavailable)
