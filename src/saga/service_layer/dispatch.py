"""Commands this process just committed, waiting for its relay to hand them over.

Handing a command over right after its commit spares the relay a claim
transaction per command and the wait for the next poll. The queue may lose
nothing that matters: every command is in the outbox, held back from other
relays for a grace period, and any relay sends it after that if this one did not.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence

from saga.domain.messages import Command


class DispatchQueue:
    def __init__(self, capacity: int = 100_000) -> None:
        self._commands: deque[Command] = deque()
        self._capacity = capacity
        self._lock = threading.Lock()
        self.ready = threading.Event()
        """Set when commands are queued (or someone wants the relay to look at the outbox)."""

    def put(self, commands: Sequence[Command]) -> None:
        with self._lock:
            # Past capacity the outbox alone carries them: they go out when their hold ends.
            room = self._capacity - len(self._commands)
            self._commands.extend(commands[: max(room, 0)])
        self.ready.set()

    def take(self, limit: int) -> list[Command]:
        with self._lock:
            count = min(limit, len(self._commands))
            return [self._commands.popleft() for _ in range(count)]

    def __len__(self) -> int:
        with self._lock:
            return len(self._commands)
