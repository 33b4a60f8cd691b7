"""The publisher contract over the transports that need no broker: in-memory, HTTP, timer-api, and routed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.support.publisher_contract import (
    PublisherContract,
    PublisherUnderTest,
    RecordingServer,
    recording_server,  # noqa: F401  (a fixture)
)
from tests.support.servers import free_port

from saga.adapters.http_publisher import HttpCommandPublisher
from saga.adapters.memory_transport import InMemoryTransport
from saga.adapters.routing_publisher import RoutingPublisher
from saga.adapters.timer_api_publisher import TimerApiPublisher
from saga.domain.messages import JsonObject, Participant
from saga.ports.messaging import CommandPublisher


class RecordingParticipants:
    def __init__(self) -> None:
        self.order_ids: list[str] = []

    def handle(self, command: JsonObject) -> None:
        self.order_ids.append(command["payload"]["order_id"])

    def received(self, expected: int) -> list[str]:
        return list(self.order_ids)


def memory_transport(participants: RecordingParticipants) -> InMemoryTransport:
    return InMemoryTransport({participant: participants.handle for participant in Participant})


class TestInMemoryTransport(PublisherContract):
    @pytest.fixture
    def reachable(self) -> PublisherUnderTest:
        participants = RecordingParticipants()
        return PublisherUnderTest(memory_transport(participants), participants.received)

    @pytest.fixture
    def unreachable(self) -> CommandPublisher:
        transport = memory_transport(RecordingParticipants())
        transport.broker_down = True
        return transport


class TestHttpPublisher(PublisherContract):
    @pytest.fixture
    def reachable(self, recording_server: RecordingServer) -> Iterator[PublisherUnderTest]:  # noqa: F811
        publisher = HttpCommandPublisher({participant: recording_server.url for participant in Participant})
        yield PublisherUnderTest(publisher, recording_server.received)
        publisher.close()

    @pytest.fixture
    def unreachable(self) -> Iterator[CommandPublisher]:
        url = f"http://127.0.0.1:{free_port()}"
        publisher = HttpCommandPublisher({participant: url for participant in Participant}, connect_timeout=1.0)
        yield publisher
        publisher.close()


class TestTimerApiPublisher(PublisherContract):
    carries = ("start_order_timer",)

    @pytest.fixture
    def reachable(self, recording_server: RecordingServer) -> Iterator[PublisherUnderTest]:  # noqa: F811
        publisher = TimerApiPublisher(recording_server.url)
        yield PublisherUnderTest(publisher, recording_server.received)
        publisher.close()

    @pytest.fixture
    def unreachable(self) -> Iterator[CommandPublisher]:
        publisher = TimerApiPublisher(f"http://127.0.0.1:{free_port()}", connect_timeout=1.0)
        yield publisher
        publisher.close()


class TestRoutingPublisher(PublisherContract):
    """The platform's mix: three participants on one transport, the timer on its own API."""

    @pytest.fixture
    def reachable(self, recording_server: RecordingServer) -> Iterator[PublisherUnderTest]:  # noqa: F811
        participants = RecordingParticipants()
        transport = memory_transport(participants)
        timer = TimerApiPublisher(recording_server.url)
        routes: dict[Participant, CommandPublisher] = {participant: transport for participant in Participant}
        publisher = RoutingPublisher({**routes, Participant.TIMER: timer})
        yield PublisherUnderTest(
            publisher, lambda expected: participants.received(expected) + recording_server.received(expected)
        )
        publisher.close()

    @pytest.fixture
    def unreachable(self) -> Iterator[CommandPublisher]:
        transport = memory_transport(RecordingParticipants())
        transport.broker_down = True
        timer = TimerApiPublisher(f"http://127.0.0.1:{free_port()}", connect_timeout=1.0)
        routes: dict[Participant, CommandPublisher] = {participant: transport for participant in Participant}
        publisher = RoutingPublisher({**routes, Participant.TIMER: timer})
        yield publisher
        publisher.close()
