"""What the simulators (`saga simulate`, the in-memory harness) need of a participant profile.

Two profiles stand behind it: `default` (`SimulatedParticipants`, our own contract,
replies keyed and deduplicated by message_id) and `platform` (`PlatformParticipants`,
the platform's real services as they behave).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from saga.adapters.simulated_participants import SimulatedParticipants
from saga.domain.messages import JsonObject, Participant

PROFILES = ("default", "platform")


class ParticipantProfile(Protocol):
    @property
    def keyed_replies(self) -> bool:
        """Whether replies are published keyed by saga id (ours) or without a key (the platform's)."""
        ...

    @property
    def kafka_participants(self) -> tuple[Participant, ...]:
        """The services that read their command topic."""
        ...

    def handle(self, command: JsonObject) -> list[JsonObject]:
        """The reply envelopes to publish now for a command envelope."""
        ...

    def release(self, now: datetime | None = None) -> list[JsonObject]:
        """Replies held back until now (a slow service), earliest first."""
        ...

    def shuffled(self, items: Sequence[JsonObject]) -> list[JsonObject]:
        """Commands of one batch in the order the service handles them."""
        ...


class DefaultProfile:
    """`SimulatedParticipants` behind the profile interface."""

    keyed_replies = True
    kafka_participants = tuple(Participant)

    def __init__(self, simulation: SimulatedParticipants) -> None:
        self.simulation = simulation

    def handle(self, command: JsonObject) -> list[JsonObject]:
        reply = self.simulation.handle(command)
        return [] if reply is None else [reply]

    def release(self, now: datetime | None = None) -> list[JsonObject]:
        return []

    def shuffled(self, items: Sequence[JsonObject]) -> list[JsonObject]:
        return list(items)
