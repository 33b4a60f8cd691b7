"""Run create-order sagas in-process, for participant teams' own tests.

Storage and transport are in memory, time is a manual clock, and every participant
is simulated except the ones you replace with your own command handler. Nothing
runs in the background: `run_until_idle()` moves messages until every saga waits
on time or has ended, so tests are deterministic.

    harness = SagaHarness(participants={"payment": my_payment_service.handle})
    saga_id = harness.start_order("cust_123", {"foodItems": [{"name": "Burger", "price": 12.99, "quantity": 1}]})
    assert harness.saga(saga_id).status is SagaStatus.COMPLETED
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from dependency_injector import providers

from saga.adapters.clock import ManualClock
from saga.adapters.memory_transport import CommandHandler, InMemoryTransport
from saga.adapters.simulated_participants import SimulatedParticipants
from saga.domain.messages import JsonObject, Participant
from saga.domain.policy import SagaPolicy
from saga.domain.saga import CreateOrderSaga
from saga.entrypoints.config import Settings
from saga.entrypoints.container import Container, simulated_participant_map
from saga.entrypoints.worker import MemoryEventPump

MAX_ROUNDS = 10_000


class SagaHarness:
    def __init__(
        self,
        participants: Mapping[Participant | str, CommandHandler] | None = None,
        policy: SagaPolicy | None = None,
        fail_step: str | None = None,
        silent_step: str | None = None,
    ) -> None:
        """`participants` replaces simulated services by yours, keyed "order", "user", "payment" or "timer".

        `fail_step` / `silent_step` make a simulated step (or compensation) fail or never answer.
        """
        self.clock = ManualClock(datetime.now(UTC))
        simulation = SimulatedParticipants(fail_step=fail_step, silent_step=silent_step)
        handlers = simulated_participant_map(simulation)
        for name, handler in (participants or {}).items():
            handlers[Participant(name)] = handler
        self.transport = InMemoryTransport(handlers)
        container = Container(
            settings=Settings(database_url="memory://", transport="memory", policy=policy or SagaPolicy())
        )
        container.clock.override(providers.Object(self.clock))
        container.memory_transport.override(providers.Object(self.transport))
        self.orchestrator = container.orchestrator()
        self.metrics = container.metrics()
        self._relay = container.relay()
        self._pump = MemoryEventPump(self.transport, container.intake())

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
        """Moves the clock, acts on passed deadlines, and runs until idle."""
        self.clock.advance(by)
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
    def sent(self) -> list[JsonObject]:
        """Every command envelope sent so far, oldest first."""
        return list(self.transport.sent)
