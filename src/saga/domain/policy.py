"""Deadlines and retry limits: the saga's timing rules, as data."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class SagaPolicy:
    step_deadline: timedelta = timedelta(seconds=30)
    """How long a step waits for its reply before the command is re-sent."""
    step_resends: int = 3
    """Re-sends of a step's command (same message_id) before the step counts as failed."""
    compensation_attempts: int = 5
    """Sends of a compensation before the saga becomes COMPENSATION_FAILED."""
    compensation_backoff: timedelta = timedelta(seconds=1)
    """Wait before re-sending a rejected compensation; doubles with each attempt."""
    order_timer: timedelta = timedelta(minutes=30)
    """How long a runner has to accept the order (start_order_timer's timeout_at)."""
    default_currency: str = "USD"

    def __post_init__(self) -> None:
        if self.step_deadline <= timedelta(0):
            raise ValueError("step deadline must be positive")
        if self.step_resends < 0:
            raise ValueError("step re-sends must not be negative")
        if self.compensation_attempts < 1:
            raise ValueError("compensation attempts must be at least 1")
        if self.compensation_backoff < timedelta(0):
            raise ValueError("compensation backoff must not be negative")
        if self.order_timer <= timedelta(0):
            raise ValueError("order timer must be positive")

    def backoff(self, attempts: int) -> timedelta:
        factor: int = 2 ** max(attempts - 1, 0)
        return self.compensation_backoff * factor
