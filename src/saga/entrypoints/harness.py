"""Run create-order sagas in-process, for participant teams' own tests.

Storage and transport are in memory, time is a manual clock, and every participant
is simulated except the ones you replace with your own command handler. Nothing
runs in the background: `run_until_idle()` moves messages until every saga waits
on time or has ended, so tests are deterministic.

    harness = SagaHarness(participants={"payment": my_payment_service.handle})
    saga_id = harness.start_order("cust_123", {"foodItems": [{"name": "Burger", "price": 12.99, "quantity": 1}]})
    assert harness.saga(saga_id).status is SagaStatus.COMPLETED

With `profile="platform"` the simulated services behave as the platform's real ones
(`saga.adapters.platform_participants`): no message_id, a re-sent command processed
again, silent failures, the timer over its HTTP API (in process); `knobs` make a
service slow, silent, answer twice or fail, and `harness.ledger` holds the orders and
payments they made.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from dependency_injector import providers

from saga.adapters.clock import ManualClock
from saga.adapters.memory_transport import CommandHandler, InMemoryTransport
from saga.adapters.platform_participants import (
    Knobs,
    Ledger,
    PlatformParticipants,
    in_process_timer_session,
    platform_handlers,
)
from saga.adapters.routing_publisher import RoutingPublisher
from saga.adapters.simulated_participants import SimulatedParticipants
from saga.adapters.timer_api_publisher import TimerApiPublisher
from saga.domain.messages import JsonObject, Participant
from saga.domain.policy import SagaPolicy
from saga.domain.saga import CreateOrderSaga
from saga.entrypoints.config import Settings
from saga.entrypoints.consumers import MemoryEventConsumer
from saga.entrypoints.container import Container, simulated_participant_map
from saga.service_layer.audit import AuditReport, audit as compare_with_ledger, stored_sagas

MAX_ROUNDS = 10_000
PROFILES = ("default", "platform")
IN_PROCESS_TIMER_URL = "http://timer.in-process"


class SagaHarness:
    def __init__(
        self,
        participants: Mapping[Participant | str, CommandHandler] | None = None,
        policy: SagaPolicy | None = None,
        fail_step: str | None = None,
        silent_step: str | None = None,
        profile: str = "default",
        knobs: Knobs | None = None,
    ) -> None:
        """`participants` replaces simulated services by yours, keyed "order", "user", "payment" or "timer".

        `fail_step` / `silent_step` make a simulated step (or compensation) fail or never answer
        (default profile). `profile="platform"` simulates the platform's real services instead,
        misbehaving as `knobs` say.
        """
        if profile not in PROFILES:
            raise ValueError(f"unknown profile {profile!r}; expected one of {', '.join(PROFILES)}")
        self.clock = ManualClock(datetime.now(UTC))
        self.platform: PlatformParticipants | None = None
        handlers: dict[Participant, CommandHandler]
        if profile == "platform":
            self.platform = PlatformParticipants(knobs, clock=self.clock.now)
            handlers = dict(platform_handlers(self.platform))
        else:
            handlers = simulated_participant_map(SimulatedParticipants(fail_step=fail_step, silent_step=silent_step))
        for name, handler in (participants or {}).items():
            handlers[Participant(name)] = handler
        self.transport = InMemoryTransport(handlers)
        container = Container(
            settings=Settings(database_url="memory://", transport="memory", policy=policy or SagaPolicy())
        )
        container.clock.override(providers.Object(self.clock))
        container.memory_transport.override(providers.Object(self.transport))
        if self.platform is not None and Participant.TIMER not in handlers:
            # The platform's timer is an HTTP API: the timer-api transport reaches it in process.
            timer = TimerApiPublisher(
                IN_PROCESS_TIMER_URL,
                session=in_process_timer_session(self.platform, IN_PROCESS_TIMER_URL),
                clock=self.clock.now,
            )
            routes = {participant: self.transport for participant in handlers}
            container.publisher.override(providers.Object(RoutingPublisher({**routes, Participant.TIMER: timer})))
        self._uow_factory = container.unit_of_work
        self.orchestrator = container.orchestrator()
        self.metrics = container.metrics()
        self._relay = container.relay()
        self._pump = MemoryEventConsumer(self.transport, container.intake())

    def start_order(self, customer_id: str, order_details: JsonObject, run: bool = True) -> str:
        """Starts a saga and, unless `run` is False, moves it as far as it goes; returns its id."""
        saga = self.orchestrator.start(customer_id, order_details)
        if run:
            self.run_until_idle()
        return saga.id

    def run_until_idle(self) -> None:
        """Sends queued commands and applies replies until nothing moves."""
        for _ in range(MAX_ROUNDS):
            if self._relay.run_once() == 0 and self._pump.drain() == 0:
                return
        raise RuntimeError(f"sagas still moving after {MAX_ROUNDS} rounds; a participant may answer forever")

    def advance(self, by: timedelta) -> None:
        """Moves the clock, delivers the slow replies now due, acts on passed deadlines, and runs until idle."""
        self.clock.advance(by)
        if self.platform is not None:
            for reply in self.platform.release(self.clock.now()):
                self.transport.deliver(reply)
            self.run_until_idle()
        self.orchestrator.sweep_deadlines()
        self.run_until_idle()

    def deliver(self, event: JsonObject) -> None:
        """Delivers an event envelope by hand, as a participant would, and runs until idle."""
        self.transport.deliver(event)
        self.run_until_idle()

    def saga(self, saga_id: str) -> CreateOrderSaga:
        saga = self.orchestrator.get(saga_id)
        if saga is None:
            raise KeyError(saga_id)
        return saga

    @property
    def ledger(self) -> Ledger:
        """The orders and payments the platform profile's services hold (platform profile only)."""
        if self.platform is None:
            raise AttributeError("only the platform profile keeps a ledger")
        return self.platform.ledger

    def audit(self) -> AuditReport:
        """`saga audit` of these sagas against the platform profile's ledger (platform profile only)."""
        return compare_with_ledger(stored_sagas(self._uow_factory), self.ledger.rows())

    @property
    def sent(self) -> list[JsonObject]:
        """Every command envelope sent so far, oldest first."""
        return list(self.transport.sent)
