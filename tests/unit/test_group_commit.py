"""Group commit with real threads: who writes, in which batch, and who gets which result."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from saga.service_layer.group_commit import GroupCommit, ItemFailed


class BrokenTransaction(Exception):
    """An item broke the shared transaction; which one is not known."""


class CommitFailed(Exception):
    """The whole batch's commit failed."""


class Recorder:
    """A batch function that records each batch and the thread that wrote it; the first
    batch waits for `release` while `hold_first` is set."""

    def __init__(self, outcome: Callable[[Sequence[int]], Sequence[int | ItemFailed]] | None = None) -> None:
        self.batches: list[list[int]] = []
        self.threads: list[int] = []
        self.hold_first = False
        self.started = threading.Event()
        self.release = threading.Event()
        self._outcome = outcome or (lambda items: [item * 10 for item in items])

    def __call__(self, items: Sequence[int]) -> Sequence[int | ItemFailed]:
        first = not self.batches
        self.batches.append(list(items))
        self.threads.append(threading.get_ident())
        if first and self.hold_first:
            self.started.set()
            assert self.release.wait(10)
        return self._outcome(items)


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def held_behind_a_first_write(
    group: GroupCommit[int, int], recorder: Recorder, items: Sequence[int]
) -> tuple[ThreadPoolExecutor, Future[int], list[Future[int]]]:
    """Item 0 is being written (held); `items` arrive meanwhile and queue up."""
    recorder.hold_first = True
    pool = ThreadPoolExecutor(max_workers=len(items) + 1)
    first = pool.submit(group.submit, 0)
    assert recorder.started.wait(10)
    futures = [pool.submit(group.submit, item) for item in items]
    wait_until(lambda: group.queued == len(items))
    return pool, first, futures


def test_a_lone_item_is_written_at_once_in_its_callers_own_thread() -> None:
    recorder = Recorder()
    group: GroupCommit[int, int] = GroupCommit(recorder)

    assert group.submit(7) == 70

    assert recorder.batches == [[7]]
    assert recorder.threads == [threading.get_ident()]


def test_items_that_arrive_during_a_write_are_written_together_in_the_next_batch() -> None:
    recorder = Recorder()
    group: GroupCommit[int, int] = GroupCommit(recorder)
    pool, first, futures = held_behind_a_first_write(group, recorder, range(1, 9))

    recorder.release.set()

    assert first.result(10) == 0
    assert [future.result(10) for future in futures] == [item * 10 for item in range(1, 9)]
    assert recorder.batches == [[0], list(range(1, 9))]  # in the order they arrived
    assert (group.batches, group.items) == (2, 9)
    pool.shutdown()


def test_many_threads_at_once_each_get_their_own_result_in_fewer_batches_than_items() -> None:
    recorder = Recorder()

    def slow_write(items: Sequence[int]) -> Sequence[int | ItemFailed]:
        time.sleep(0.002)  # a commit's round trip, during which others arrive
        return recorder(items)

    group: GroupCommit[int, int] = GroupCommit(slow_write)

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(group.submit, range(400)))

    assert results == [item * 10 for item in range(400)]
    assert sorted(item for batch in recorder.batches for item in batch) == list(range(400))
    assert len(recorder.batches) < 400


def test_a_batch_holds_at_most_max_batch_items() -> None:
    recorder = Recorder()
    group: GroupCommit[int, int] = GroupCommit(recorder, max_batch=3)
    pool, first, futures = held_behind_a_first_write(group, recorder, range(1, 8))

    recorder.release.set()

    assert first.result(10) == 0

    assert [future.result(10) for future in futures] == [item * 10 for item in range(1, 8)]
    assert recorder.batches == [[0], [1, 2, 3], [4, 5, 6], [7]]
    pool.shutdown()


def test_an_item_that_failed_alone_fails_its_own_caller_only() -> None:
    def odd_items_fail(items: Sequence[int]) -> list[int | ItemFailed]:
        return [ItemFailed(ValueError(f"item {item}")) if item % 2 else item * 10 for item in items]

    recorder = Recorder(odd_items_fail)
    group: GroupCommit[int, int] = GroupCommit(recorder)
    pool, first, futures = held_behind_a_first_write(group, recorder, range(1, 7))

    recorder.release.set()

    assert first.result(10) == 0

    for item, future in zip(range(1, 7), futures, strict=True):
        error = future.exception(10)
        if item % 2:
            assert isinstance(error, ValueError) and str(error) == f"item {item}"
        else:
            assert error is None and future.result() == item * 10
    assert recorder.batches == [[0], [1, 2, 3, 4, 5, 6]]
    pool.shutdown()


def test_a_batch_broken_by_one_item_is_written_again_one_item_per_write_in_each_callers_thread() -> None:
    def item_3_breaks_the_transaction(items: Sequence[int]) -> list[int | ItemFailed]:
        if 3 in items:
            raise BrokenTransaction("an item broke the transaction")
        return [item * 10 for item in items]

    recorder = Recorder(item_3_breaks_the_transaction)
    group: GroupCommit[int, int] = GroupCommit(recorder, split_on=(BrokenTransaction,))
    pool, first, futures = held_behind_a_first_write(group, recorder, range(1, 6))

    recorder.release.set()

    assert first.result(10) == 0

    assert [future.exception(10) is None for future in futures] == [True, True, False, True, True]
    assert isinstance(futures[2].exception(), BrokenTransaction)
    assert [future.result() for index, future in enumerate(futures) if index != 2] == [10, 20, 40, 50]
    assert recorder.batches[:2] == [[0], [1, 2, 3, 4, 5]]
    assert sorted(recorder.batches[2:]) == [[1], [2], [3], [4], [5]]
    assert len(set(recorder.threads[2:])) == 5  # each caller wrote its own item
    pool.shutdown()


def test_a_lone_item_that_breaks_its_transaction_is_not_written_twice() -> None:
    def breaks(items: Sequence[int]) -> list[int | ItemFailed]:
        raise BrokenTransaction("duplicate key")

    recorder = Recorder(breaks)
    group: GroupCommit[int, int] = GroupCommit(recorder, split_on=(BrokenTransaction,))

    with pytest.raises(BrokenTransaction):
        group.submit(1)
    assert recorder.batches == [[1]]


def test_a_failed_commit_is_reported_to_every_caller_of_the_batch_and_nothing_is_written_again() -> None:
    def commit_fails(items: Sequence[int]) -> list[int | ItemFailed]:
        if len(items) > 1:
            raise CommitFailed("server closed the connection")
        return [item * 10 for item in items]

    recorder = Recorder(commit_fails)
    group: GroupCommit[int, int] = GroupCommit(recorder, split_on=(BrokenTransaction,))
    pool, first, futures = held_behind_a_first_write(group, recorder, range(1, 5))

    recorder.release.set()

    assert first.result(10) == 0
    errors = [future.exception(10) for future in futures]
    assert all(isinstance(error, CommitFailed) for error in errors)
    assert recorder.batches == [[0], [1, 2, 3, 4]]
    # The group goes on: the next caller writes as before.
    assert group.submit(9) == 90
    pool.shutdown()


def test_a_batch_function_that_answers_for_the_wrong_number_of_items_fails_every_caller() -> None:
    group: GroupCommit[int, int] = GroupCommit(lambda items: [1, 2])

    with pytest.raises(RuntimeError, match="2 outcomes for 1 items"):
        group.submit(1)


def test_an_interrupted_leader_stops_and_its_followers_learn_that_their_write_is_unknown() -> None:
    recorder = Recorder()
    interrupt = [True]

    def interrupted_once(items: Sequence[int]) -> Sequence[int | ItemFailed]:
        outcome = recorder(items)
        if len(items) > 1 and interrupt[0]:
            interrupt[0] = False
            raise KeyboardInterrupt
        return outcome

    recorder.hold_first = True
    group: GroupCommit[int, int] = GroupCommit(interrupted_once)
    results: dict[int, BaseException | int] = {}

    def submit(item: int) -> None:
        try:
            results[item] = group.submit(item)
        except BaseException as error:  # the test looks at what each caller got
            results[item] = error

    threads = [threading.Thread(target=submit, args=(item,)) for item in range(4)]
    threads[0].start()
    assert recorder.started.wait(10)
    for thread in threads[1:]:
        thread.start()
    wait_until(lambda: group.queued == 3)
    recorder.release.set()
    for thread in threads:
        thread.join(10)

    assert results[0] == 0
    kinds = sorted(type(results[item]).__name__ for item in (1, 2, 3))
    assert kinds == ["KeyboardInterrupt", "RuntimeError", "RuntimeError"]
    assert group.submit(5) == 50  # the group is free again
