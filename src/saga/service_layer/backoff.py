"""How every loop waits on something that is down (database, broker, participant), written once.

`Backoff` gives capped exponential pauses with full jitter (tenacity's
`wait_random_exponential`: loops that failed together do not retry together); `Outage`
logs one line when a loop starts failing and one when it works again, with the count
of failures between, instead of a line per attempt.
"""

from __future__ import annotations

import logging
import time

from tenacity import RetryCallState, Retrying, wait_random_exponential

from saga.ports.persistence import PersistenceError

FIRST_PAUSE_SECONDS = 0.2
"""The first pause after a failure; later ones double (at random within the window) up to the cap."""


def pause_after(failures: int, cap_seconds: float, first_seconds: float = FIRST_PAUSE_SECONDS) -> float:
    """The pause after `failures` (1 or more) consecutive failures, in seconds: random between
    `first_seconds` (or the cap, if smaller) and min(cap, first × 2^(failures-1))."""
    first = min(first_seconds, cap_seconds)
    state = RetryCallState(Retrying(), None, (), {})
    state.attempt_number = failures
    return float(wait_random_exponential(multiplier=first, max=cap_seconds, min=first)(state))


class Backoff:
    """Pauses for consecutive failures, as `pause_after` gives them. `reset()` after a success."""

    def __init__(self, cap_seconds: float, first_seconds: float = FIRST_PAUSE_SECONDS) -> None:
        self._cap = cap_seconds
        self._first = first_seconds
        self.failures = 0

    def next_pause(self) -> float:
        """Counts a failure; returns how long to wait before the next attempt, in seconds."""
        self.failures += 1
        return pause_after(self.failures, self._cap, self._first)

    def reset(self) -> None:
        self.failures = 0


class Outage:
    """One log line when `what` starts failing, one when it succeeds again.

    The first failure is logged with its cause (a traceback too when it is not the
    persistence port's error, since that is a fault in the code, not an outage); the
    failures after it are only counted, and logged at DEBUG.
    """

    def __init__(self, what: str, log: logging.Logger) -> None:
        self._what = what
        self._log = log
        self._failures = 0
        self._since = 0.0

    @property
    def ongoing(self) -> bool:
        return self._failures > 0

    def failed(self, error: BaseException | str, retry_in: float) -> None:
        """Counts a failure (an exception, or what went wrong in words); logs the first."""
        self._failures += 1
        if self._failures == 1:
            self._since = time.monotonic()
            if isinstance(error, str):
                cause, unexpected = error, None
            else:
                text = str(error).strip()
                cause = f"{type(error).__name__}: {text.splitlines()[0] if text else ''}"
                expected = isinstance(error, PersistenceError | OSError | ConnectionError)
                unexpected = None if expected else error
            self._log.warning(
                "%s failing: %s; retrying with backoff, next in %.1fs",
                self._what,
                cause,
                retry_in,
                exc_info=unexpected,
            )
        else:
            self._log.debug("%s still failing (%d): %s", self._what, self._failures, error)

    def succeeded(self) -> None:
        if self._failures:
            self._log.warning(
                "%s working again after %d failed attempt(s) over %.1fs",
                self._what,
                self._failures,
                time.monotonic() - self._since,
            )
            self._failures = 0
