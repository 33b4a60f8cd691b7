"""The relay queue: which commands this process just committed, for its own relay to send at once.

Handing a command over right after its commit spares it the wait for the relay's
next poll of the outbox. The queue holds message_ids only and may lose them without
harm: the commands themselves are in the outbox, held back from other relays for a
grace period (`hold_until`), and any relay sends them after that if this one did not.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence

from saga.domain.messages import Command


class RelayQueue:
    def __init__(self, capacity: int = 100_000) -> None:
        self._message_ids: deque[str] = deque()
        self._capacity = capacity
        self._lock = threading.Lock()
        self.ready = threading.Event()
        """Set when commands are queued (or someone wants the relay to look at the outbox)."""

    def put(self, commands: Sequence[Command]) -> None:
        """Queues the message_ids of commands whose unit of work has committed."""
        with self._lock:
            # Past capacity the outbox alone carries them: they go out when their hold ends.
            room = max(self._capacity - len(self._message_ids), 0)
            self._message_ids.extend(command.message_id for command in commands[:room])
        self.ready.set()

    def take(self, limit: int) -> list[str]:
        """Up to `limit` queued message_ids, oldest first."""
        with self._lock:
            count = min(limit, len(self._message_ids))
            return [self._message_ids.popleft() for _ in range(count)]

    def __len__(self) -> int:
        with self._lock:
            return len(self._message_ids)
