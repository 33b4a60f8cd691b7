"""Group commit: callers that write at the same time share one transaction.

A caller hands its item to `GroupCommit.submit` and gets its own item's result back.
While a batch is being written, the items that arrive queue up; when that write ends,
one of their callers (the leader) takes every queued item (up to `max_batch`) and
writes them with one call of the batch function, in its own thread, while the others
wait; then each caller gets its own result or its own exception. A caller that finds
nothing being written writes its item at once, in its own thread, with no hand-over
to another thread: alone, a write costs what it costs without grouping.

The batch function decides what is one item's fault and what is the whole batch's:
it returns one outcome per item (a result, or `ItemFailed` for an item whose work
failed alone while the others' went on), or raises for the whole batch. An exception
of the `split_on` types (an item broke the shared transaction, and which one is not
known) makes every item of a batch of several be written again alone, each in its
own caller's thread; any other exception (the database is gone, the commit failed)
goes to every caller of the batch.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

DEFAULT_MAX_BATCH = 100


@dataclass(frozen=True)
class ItemFailed:
    """The outcome of an item whose own work failed with `error`; it goes to that item's caller alone."""

    error: BaseException


class _WriteAlone:
    """The outcome of an item whose batch failed on some item's fault: its caller writes it alone."""


_WRITE_ALONE = _WriteAlone()


class _Ticket(Generic[T, R]):
    """One caller's item and, once its batch was written, its outcome."""

    __slots__ = ("done", "item", "outcome")

    def __init__(self, item: T) -> None:
        self.item = item
        self.outcome: R | ItemFailed | _WriteAlone = ItemFailed(RuntimeError("the item was not written"))
        self.done = False


class GroupCommit(Generic[T, R]):
    """Writes items of concurrent callers together, one batch function call per batch.

    `write(items)` returns one outcome per item, in order: the item's result or
    `ItemFailed`. One batch is written at a time; after a split, the items written
    alone may be written beside each other and beside the next batch. Thread-safe.
    """

    def __init__(
        self,
        write: Callable[[Sequence[T]], Sequence[R | ItemFailed]],
        split_on: tuple[type[BaseException], ...] = (),
        max_batch: int = DEFAULT_MAX_BATCH,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._write = write
        self._split_on = split_on
        self._max_batch = max_batch
        self._changed = threading.Condition()
        self._pending: deque[_Ticket[T, R]] = deque()
        self._writing = False
        self.batches = 0
        """Batch function calls so far, failed ones and the writes alone after a split included."""
        self.items = 0
        """Items handed to the batch function so far (an item written again alone counts again)."""

    @property
    def queued(self) -> int:
        """Items waiting for the write in progress to end."""
        with self._changed:
            return len(self._pending)

    def submit(self, item: T) -> R:
        """Writes `item`, with whatever other items arrive meanwhile, and returns its result.

        Raises the item's own `ItemFailed` error, or what the batch function raised for the
        whole batch the item was in (or for the item alone, after a split).
        """
        ticket: _Ticket[T, R] = _Ticket(item)
        with self._changed:
            self._pending.append(ticket)
        while True:
            with self._changed:
                while self._writing and not ticket.done:
                    self._changed.wait()
                if ticket.done:
                    break
                self._writing = True
                count = min(len(self._pending), self._max_batch)
                batch = [self._pending.popleft() for _ in range(count)]
            try:
                self._lead(batch)
            finally:
                with self._changed:
                    self._writing = False
                    for written in batch:
                        written.done = True
                    self._changed.notify_all()
        return self._result(ticket)

    def _lead(self, batch: list[_Ticket[T, R]]) -> None:
        """Writes `batch` and sets each ticket's outcome; a failure of the batch goes to every ticket."""
        try:
            outcomes = self._call([ticket.item for ticket in batch])
        except self._split_on as error:
            for ticket in batch:
                ticket.outcome = _WRITE_ALONE if len(batch) > 1 else ItemFailed(error)
            return
        except Exception as error:
            for ticket in batch:
                ticket.outcome = ItemFailed(error)
            return
        except BaseException as interrupt:
            # The leader's thread stops; the others learn that their items' fate is not known.
            for ticket in batch:
                ticket.outcome = ItemFailed(RuntimeError(f"the write was interrupted: {interrupt!r}"))
            raise
        for ticket, outcome in zip(batch, outcomes, strict=True):
            ticket.outcome = outcome

    def _call(self, items: list[T]) -> Sequence[R | ItemFailed]:
        with self._changed:
            self.batches += 1
            self.items += len(items)
        outcomes = self._write(items)
        if len(outcomes) != len(items):
            raise RuntimeError(f"the batch function returned {len(outcomes)} outcomes for {len(items)} items")
        return outcomes

    def _result(self, ticket: _Ticket[T, R]) -> R:
        outcome = ticket.outcome
        if isinstance(outcome, _WriteAlone):
            outcome = self._call([ticket.item])[0]
        if isinstance(outcome, ItemFailed):
            raise outcome.error
        return outcome
