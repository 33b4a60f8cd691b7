"""Deadlines and retry limits: the saga's timing rules, as data.

Every duration and count has an upper bound, so no date the saga computes from them
(`now + deadline`, `now + backoff`) can leave the calendar, whatever the attempt count.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

LONGEST_WAIT = timedelta(days=7)
"""Upper bound of a step deadline and of the order timer."""
LONGEST_BACKOFF = timedelta(days=1)
"""Upper bound of the compensation backoff and of its cap."""
MOST_STEP_RESENDS = 100
MOST_COMPENSATION_ATTEMPTS = 1000


@dataclass(frozen=True)
class SagaPolicy:
    step_deadline: timedelta = timedelta(seconds=30)
    """How long a step waits for its reply before the command is re-sent; at most LONGEST_WAIT."""
    step_resends: int = 3
    """Re-sends of a step's command (same message_id) before the step counts as failed; 0 to MOST_STEP_RESENDS."""
    compensation_attempts: int = 5
    """Sends of a compensation before the saga becomes COMPENSATION_FAILED; 1 to MOST_COMPENSATION_ATTEMPTS."""
    compensation_backoff: timedelta = timedelta(seconds=1)
    """Wait before re-sending a rejected compensation; doubles with each attempt up to the cap."""
    order_timer: timedelta = timedelta(minutes=30)
    """How long a runner has to accept the order (start_order_timer's timeout_at); at most LONGEST_WAIT."""
    default_currency: str = "USD"
    compensation_backoff_max: timedelta = timedelta(minutes=10)
    """The longest wait between two sends of a rejected compensation; at most LONGEST_BACKOFF."""
    payment_return_url: str | None = None
    """Sent as `return_url` with `authorize_payment` when set (docs/contract.md, "Command payloads")."""

    def __post_init__(self) -> None:
        """Raises ValueError naming the field in words when a value is outside its bounds."""
        if self.step_deadline <= timedelta(0):
            raise ValueError("step deadline must be positive")
        if self.step_deadline > LONGEST_WAIT:
            raise ValueError(f"step deadline must be at most {LONGEST_WAIT}")
        if self.step_resends < 0:
            raise ValueError("step re-sends must not be negative")
        if self.step_resends > MOST_STEP_RESENDS:
            raise ValueError(f"step re-sends must be at most {MOST_STEP_RESENDS}")
        if self.compensation_attempts < 1:
            raise ValueError("compensation attempts must be at least 1")
        if self.compensation_attempts > MOST_COMPENSATION_ATTEMPTS:
            raise ValueError(f"compensation attempts must be at most {MOST_COMPENSATION_ATTEMPTS}")
        if self.compensation_backoff < timedelta(0):
            raise ValueError("compensation backoff must not be negative")
        if self.compensation_backoff > LONGEST_BACKOFF:
            raise ValueError(f"compensation backoff must be at most {LONGEST_BACKOFF}")
        if not timedelta(0) <= self.compensation_backoff_max <= LONGEST_BACKOFF:
            raise ValueError(f"compensation backoff cap must be between 0 and {LONGEST_BACKOFF}")
        if self.order_timer <= timedelta(0):
            raise ValueError("order timer must be positive")
        if self.order_timer > LONGEST_WAIT:
            raise ValueError(f"order timer must be at most {LONGEST_WAIT}")

    def backoff(self, attempts: int) -> timedelta:
        """The wait before the next send of a compensation rejected `attempts` times:
        `compensation_backoff` doubled per attempt after the first, never above
        `compensation_backoff_max`. Defined for any integer, however large."""
        cap = self.compensation_backoff_max
        wait = self.compensation_backoff
        if wait <= timedelta(0):
            return timedelta(0)
        for _ in range(max(attempts - 1, 0)):
            if wait >= cap:
                break
            wait *= 2
        return min(wait, cap)
