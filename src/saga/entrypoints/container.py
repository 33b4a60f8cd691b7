"""The one place that decides which adapter stands behind each port, from the settings,
and that starts and stops what a process runs (`running`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

from dependency_injector import containers, providers

from saga.adapters.clock import SystemClock
from saga.adapters.envelope import decode_event
from saga.adapters.http_publisher import HttpCommandPublisher
from saga.adapters.kafka_publisher import KafkaCommandPublisher
from saga.adapters.kafka_settings import KafkaSettings
from saga.adapters.memory_store import InMemoryStore, InMemoryUnitOfWork
from saga.adapters.memory_transport import CommandHandler, InMemoryTransport
from saga.adapters.routing_publisher import RoutingPublisher
from saga.adapters.simulated_participants import SimulatedParticipants
from saga.adapters.sql import SqlAlchemyUnitOfWork
from saga.adapters.sql.outbox_changes import outbox_changes_for
from saga.adapters.timer_api_publisher import TimerApiPublisher
from saga.domain.messages import Participant
from saga.entrypoints.config import Settings
from saga.entrypoints.consumers import EventConsumer, MemoryEventConsumer
from saga.entrypoints.kafka_events import KafkaEventSource
from saga.entrypoints.lifecycle import database_engine, migrated_schema, opened_publisher, running_worker
from saga.entrypoints.worker import BackgroundWorker
from saga.ports.clock import Clock
from saga.ports.messaging import CommandPublisher
from saga.ports.persistence import UnitOfWork
from saga.service_layer.metrics import Metrics, StoreGauges
from saga.service_layer.orchestrator import SagaOrchestrator
from saga.service_layer.receiver import EventReceiver
from saga.service_layer.relay import OutboxRelay
from saga.service_layer.relay_queue import RelayQueue
from saga.service_layer.retention import Retention
from saga.service_layer.tracing import Tracing

log = logging.getLogger(__name__)


def simulated_participant_map(simulation: SimulatedParticipants) -> dict[Participant, CommandHandler]:
    return {participant: simulation.handle for participant in Participant}


def kafka_event_sources(settings: KafkaSettings, intake: EventReceiver, metrics: Metrics) -> list[EventConsumer]:
    metrics.consumers_configured(settings.consumers)
    return [KafkaEventSource(settings, intake, metrics) for _ in range(settings.consumers)]


def store_kind(settings: Settings) -> str:
    return "sql" if settings.uses_sql else "memory"


def publisher_kind(settings: Settings) -> str:
    """One transport for every participant, or `routed`: each its own (docs/contract.md, "Transport per participant")."""
    return "routed" if settings.routed else settings.transport


def consumer_kind(settings: Settings) -> str:
    """Kafka consumers run when any participant is on Kafka; HTTP replies need none."""
    return "kafka" if any(settings.route(p) == "kafka" for p in Participant) else settings.transport


def participant_routes(settings: Settings) -> dict[Participant, CommandPublisher]:
    """Each participant's publisher; participants sharing a transport share one publisher."""
    made: dict[str, CommandPublisher] = {}

    def publisher(route: str) -> CommandPublisher:
        if route not in made:
            if route == "kafka":
                made[route] = KafkaCommandPublisher(settings.kafka)
            elif route == "timer-api":
                made[route] = TimerApiPublisher(
                    settings.http.service_urls[Participant.TIMER],
                    connect_timeout=settings.http.connect_timeout,
                    read_timeout=settings.http.read_timeout,
                )
            else:
                made[route] = HttpCommandPublisher(
                    settings.http.service_urls,
                    connect_timeout=settings.http.connect_timeout,
                    read_timeout=settings.http.read_timeout,
                    participants=[p for p in Participant if settings.route(p) == "http"],
                )
        return made[route]

    return {participant: publisher(settings.route(participant)) for participant in Participant}


class Container(containers.DeclarativeContainer):
    """Resources (the engine, the publisher, the schema migration at start, the background
    loops) start with `init_resources()` and stop with `shutdown_resources()`; `running`
    does both. Everything else is built on first use."""

    settings = providers.Dependency(instance_of=Settings)
    migrate = providers.Dependency(instance_of=bool, default=True)
    """Whether the process brings the database schema up to date at start."""
    relay_only = providers.Dependency(instance_of=bool, default=False)
    """An API-only process runs just the relay (it sends what it commits), no event or deadline loops."""

    clock: providers.Provider[Clock] = providers.Singleton(SystemClock)
    metrics = providers.Singleton(Metrics)
    dispatch_queue = providers.Singleton(RelayQueue)

    engine = providers.Resource(database_engine, settings.provided.database_url, settings.provided.uses_sql, metrics)
    memory_store = providers.Singleton(InMemoryStore)
    unit_of_work: providers.Provider[UnitOfWork] = providers.Selector(
        providers.Callable(store_kind, settings),
        sql=providers.Factory(SqlAlchemyUnitOfWork, engine),
        memory=providers.Factory(InMemoryUnitOfWork, memory_store),
    )

    tracing = providers.Singleton(Tracing)
    orchestrator = providers.Singleton(
        SagaOrchestrator,
        uow_factory=unit_of_work.provider,
        clock=clock,
        policy=settings.provided.policy,
        metrics=metrics,
        limits=settings.provided.limits,
        dispatch=dispatch_queue,
        dispatch_hold=settings.provided.dispatch_hold,
        tracing=tracing,
    )
    intake = providers.Singleton(EventReceiver, orchestrator, metrics, providers.Object(decode_event))
    store_gauges = providers.Singleton(StoreGauges, uow_factory=unit_of_work.provider, clock=clock)

    simulation = providers.Singleton(SimulatedParticipants, fail_step=settings.provided.simulate_fail_step)
    memory_transport = providers.Singleton(
        InMemoryTransport, participants=providers.Callable(simulated_participant_map, simulation)
    )
    transport_publisher: providers.Provider[CommandPublisher] = providers.Selector(
        providers.Callable(publisher_kind, settings),
        routed=providers.Singleton(RoutingPublisher, providers.Callable(participant_routes, settings)),
        memory=memory_transport,
        kafka=providers.Singleton(KafkaCommandPublisher, settings.provided.kafka),
        http=providers.Singleton(
            HttpCommandPublisher,
            service_urls=settings.provided.http.service_urls,
            connect_timeout=settings.provided.http.connect_timeout,
            read_timeout=settings.provided.http.read_timeout,
        ),
    )
    publisher: providers.Provider[CommandPublisher] = providers.Resource(opened_publisher, transport_publisher)
    event_sources: providers.Provider[list[EventConsumer]] = providers.Selector(
        providers.Callable(consumer_kind, settings),
        memory=providers.List(providers.Singleton(MemoryEventConsumer, memory_transport, intake)),
        # HTTP events arrive as synchronous replies and through POST /api/events: nothing to poll.
        http=providers.List(),
        kafka=providers.Singleton(kafka_event_sources, settings.provided.kafka, intake, metrics),
    )

    relay = providers.Singleton(
        OutboxRelay,
        uow_factory=unit_of_work.provider,
        publisher=publisher,
        orchestrator=orchestrator,
        clock=clock,
        metrics=metrics,
        dispatch=dispatch_queue,
        give_up_after=settings.provided.policy.step_deadline,
        tracing=tracing,
    )
    retention = providers.Singleton(
        Retention,
        uow_factory=unit_of_work.provider,
        clock=clock,
        metrics=metrics,
        outbox_retention=settings.provided.outbox_retention,
        inbox_retention=settings.provided.inbox_retention,
    )
    worker = providers.Singleton(
        BackgroundWorker,
        relay=relay,
        orchestrator=orchestrator,
        wakeup=dispatch_queue.provided.ready,
        sources=event_sources,
        relay_poll_seconds=settings.provided.relay_poll_seconds,
        sweep_interval_seconds=settings.provided.sweep_interval_seconds,
        retention=retention,
        retention_interval_seconds=settings.provided.retention_interval_seconds,
        retry_max_seconds=settings.provided.retry_max_seconds,
        outbox_changes=providers.Callable(outbox_changes_for, engine),
    )

    schema = providers.Resource(migrated_schema, engine, migrate, settings.provided.retry_max_seconds)
    background = providers.Resource(running_worker, worker, schema, relay_only)


def build_container(settings: Settings, migrate: bool = True, relay_only: bool = False) -> Container:
    return Container(settings=settings, migrate=migrate, relay_only=relay_only)


@contextmanager
def running(container: Container) -> Iterator[Container]:
    """Starts the container's resources and stops them on exit, whatever ends the block."""
    container.init_resources()
    try:
        yield container
    finally:
        began = time.monotonic()
        container.shutdown_resources()
        log.info("background work, publisher and database engine stopped in %.2fs", time.monotonic() - began)
