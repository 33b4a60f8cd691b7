"""The messaging port: how commands leave the orchestrator."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from saga.domain.messages import Command, Event


@dataclass(frozen=True)
class Delivered:
    """The transport took the command; `reply` is set when it answered at once (HTTP 200)."""

    reply: Event | None = None


@dataclass(frozen=True)
class Rejected:
    """The participant refused the command for good (HTTP 4xx): the step failed."""

    reason: str


@dataclass(frozen=True)
class Undelivered:
    """A transient failure (broker down, timeout, 5xx): send again later."""

    reason: str
    transport_down: bool = False
    """The transport itself is unreachable (a broker), not one participant: the command
    keeps waiting however long it takes, and its step's deadline waits with it."""
    retry_after: timedelta | None = None
    """The participant asked not to be sent to again sooner (HTTP `Retry-After`)."""


SendResult = Delivered | Rejected | Undelivered


class CommandPublisher(ABC):
    @abstractmethod
    def publish(self, commands: Sequence[Command]) -> list[SendResult]:
        """Sends commands, returning one result per command in the same order.

        Never raises for a delivery problem: that is an Undelivered result.
        """

    def close(self) -> None:
        """Releases connections; the default holds none."""

    def healthy(self) -> str | None:
        """None when the transport looks reachable, else why not (for /readyz)."""
        return None
