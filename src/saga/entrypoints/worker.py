"""Background work of an orchestrator process: take in events, relay the outbox, sweep deadlines.

Each loop runs in its own daemon thread and survives any error: it waits with the
shared capped backoff and goes on, so a database or broker outage never stops the
process. An outage is logged twice per loop: when it starts and when it ends.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from saga.entrypoints.consumers import EventConsumer, GroupConsumer
from saga.ports.persistence import OutboxChanges
from saga.service_layer.backoff import Backoff, Outage
from saga.service_layer.orchestrator import SagaOrchestrator
from saga.service_layer.relay import OutboxRelay
from saga.service_layer.retention import Retention

log = logging.getLogger(__name__)

RETRY_MAX_SECONDS = 5.0
NEVER = datetime.min.replace(tzinfo=UTC)

Loop = Callable[[Callable[[], None]], None]
"""A background loop: runs until the worker stops, calling its argument after each pass that worked."""


class BackgroundWorker:
    def __init__(
        self,
        relay: OutboxRelay,
        orchestrator: SagaOrchestrator,
        wakeup: threading.Event,
        sources: Sequence[EventConsumer],
        relay_poll_seconds: float,
        sweep_interval_seconds: float,
        retention: Retention | None = None,
        retention_interval_seconds: float = 300.0,
        retry_max_seconds: float = RETRY_MAX_SECONDS,
        outbox_changes: OutboxChanges | None = None,
    ) -> None:
        """`retry_max_seconds`: the longest pause of a loop that keeps failing (the database is down).
        `outbox_changes`: word from other processes that commands are due, which sends the relay
        to the outbox before its next poll (None: it polls every `relay_poll_seconds`)."""
        self._relay = relay
        self._orchestrator = orchestrator
        self._wakeup = wakeup
        self._sources = list(sources)
        self._relay_poll_seconds = relay_poll_seconds
        self._sweep_interval_seconds = sweep_interval_seconds
        self._retention = retention
        self._retention_interval_seconds = retention_interval_seconds
        self._retry_max_seconds = retry_max_seconds
        self._outbox_changes = outbox_changes
        self._outbox_changed = threading.Event()
        """Set when another process committed commands due at once: the relay polls on waking."""
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self, relay_only: bool = False) -> None:
        """Starts every loop, or with `relay_only` just the relay, which sends what this
        process commits (an API-only process leaves events and deadlines to workers)."""
        if self._threads:
            return
        self._stop.clear()
        loops: list[tuple[str, Loop]] = [("outbox-relay", self._relay_loop)]
        if self._outbox_changes is not None:
            loops.append(("outbox-listener", self._listen_loop))
        if not relay_only:
            loops.append(("deadline-sweeper", self._sweep_loop))
            if self._retention is not None:
                loops.append(("retention", self._retention_loop))
            loops += [(f"events-{index}", self._source_loop(source)) for index, source in enumerate(self._sources)]
        for name, loop in loops:
            thread = threading.Thread(target=self._guarded, args=(name, loop), name=f"saga-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wakeup.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()

    def _guarded(self, name: str, loop: Loop) -> None:
        """Runs `loop` until stopped; each time it raises, waits with backoff and runs it again.
        The loop calls the function it is given after each pass that worked."""
        backoff = Backoff(self._retry_max_seconds)
        outage = Outage(f"{name} loop", log)

        def worked() -> None:
            if backoff.failures:
                backoff.reset()
                outage.succeeded()

        while not self._stop.is_set():
            try:
                loop(worked)
            except Exception as error:
                pause = backoff.next_pause()
                outage.failed(error, pause)
                self._stop.wait(pause)

    def _relay_loop(self, worked: Callable[[], None]) -> None:
        last_poll = 0.0
        while not self._stop.is_set():
            # Woken by a commit that queued commands; the outbox itself is polled every
            # relay_poll_seconds, for commands whose hold ended (another process's), at once
            # when another process says it wrote commands due now, and when one this relay
            # put back is due again.
            retry_in = self._relay.seconds_to_retry()
            self._wakeup.wait(self._relay_poll_seconds if retry_in is None else min(retry_in, self._relay_poll_seconds))
            self._wakeup.clear()
            poll = time.monotonic() - last_poll >= self._relay_poll_seconds
            if self._outbox_changed.is_set():
                self._outbox_changed.clear()
                poll = True
            if self._relay.seconds_to_retry() == 0.0:
                poll = True
            if poll:
                last_poll = time.monotonic()
            while not self._stop.is_set():
                fresh = self._relay.send_fresh()
                due = self._relay.send_due() if poll else 0
                worked()
                poll = poll and due > 0  # keep at the outbox only while it has work
                if fresh == 0 and due == 0:
                    break

    def _listen_loop(self, worked: Callable[[], None]) -> None:
        if self._outbox_changes is None:
            return

        def changed() -> None:
            worked()
            self._outbox_changed.set()
            self._wakeup.set()

        self._outbox_changes.listen(self._stop, changed)

    def _sweep_loop(self, worked: Callable[[], None]) -> None:
        while not self._stop.wait(self._sweep_interval_seconds):
            self._orchestrator.sweep_deadlines(events_read_until=self.events_read_until())
            worked()

    def events_read_until(self) -> datetime | None:
        """Up to when this process's group consumers have read every event they were given
        (None: no group consumers, no limit). Before they have, no deadline counts."""
        members = [source for source in self._sources if isinstance(source, GroupConsumer)]
        if not members:
            return None
        moments = [member.caught_up_at() for member in members]
        return min((moment or NEVER for moment in moments), default=None)

    def readiness(self) -> str | None:
        """None when every group consumer of this process is a member of a stable group, else why not."""
        problems = [
            problem
            for source in self._sources
            if isinstance(source, GroupConsumer) and (problem := source.readiness()) is not None
        ]
        return "; ".join(problems) if problems else None

    def _retention_loop(self, worked: Callable[[], None]) -> None:
        if self._retention is None:
            return
        while not self._stop.wait(self._retention_interval_seconds):
            self._retention.prune()
            worked()

    def _source_loop(self, source: EventConsumer) -> Loop:
        return lambda worked: source.run(self._stop)
