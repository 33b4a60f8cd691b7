"""One transport per participant (docs/contract.md, "Transport per participant").

Each command goes to the publisher of the participant that serves it; one batch is
split by publisher and each part sent in one call, and the results come back in the
commands' order. Every transport still goes through the same outbox, deadlines and
compensations: this only chooses the wire.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from saga.domain.messages import Command, Participant
from saga.ports.messaging import CommandPublisher, SendResult, Undelivered


class RoutingPublisher(CommandPublisher):
    def __init__(self, routes: Mapping[Participant, CommandPublisher]) -> None:
        self._routes = dict(routes)
        # One publisher may serve several participants (Kafka for three of them): close it once.
        self._publishers: list[CommandPublisher] = []
        for publisher in self._routes.values():
            if all(publisher is not known for known in self._publishers):
                self._publishers.append(publisher)

    def route(self, participant: Participant) -> CommandPublisher | None:
        return self._routes.get(participant)

    def publish(self, commands: Sequence[Command]) -> list[SendResult]:
        results: list[SendResult | None] = [None] * len(commands)
        for publisher in self._publishers:
            indices = [i for i, command in enumerate(commands) if self._routes.get(command.participant) is publisher]
            if not indices:
                continue
            for index, result in zip(indices, publisher.publish([commands[i] for i in indices]), strict=True):
                results[index] = result
        return [
            result if result is not None else Undelivered(f"no transport configured for {commands[i].participant}")
            for i, result in enumerate(results)
        ]

    def healthy(self) -> str | None:
        problems = []
        for publisher in self._publishers:
            problem = publisher.healthy()
            if problem is not None:
                served = ", ".join(p.value for p, route in self._routes.items() if route is publisher)
                problems.append(f"{served}: {problem}")
        return "; ".join(problems) or None

    def close(self) -> None:
        for publisher in self._publishers:
            publisher.close()
