"""The persistence port's contract, held against every adapter: memory, SQLite, PostgreSQL.

A test class subclasses `PersistenceContract` and provides the `uow_factory` fixture: units
of work over one fresh, empty, migrated store. Stores whose transactions run side by side
(memory, PostgreSQL; not SQLite, whose writers queue) also take `OverlappingTransactionsContract`.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Sequence
from copy import deepcopy
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from saga.domain.messages import Command
from saga.domain.saga import (
    Awaiting,
    Compensation,
    CreateOrderSaga,
    HistoryEntry,
    HistoryKind,
    ResourceRef,
    SagaStatus,
    Step,
    Undo,
    UndoStatus,
)
from saga.domain.steps import Resource
from saga.ports.persistence import (
    ConcurrencyConflict,
    DuplicateSaga,
    IdempotencyRecord,
    PageCursor,
    RetryLater,
    SagaResources,
    UnitOfWorkFactory,
)

T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
# Threads waiting on each other give up after this long instead of hanging the run.
RENDEZVOUS_TIMEOUT = 10.0


def new_id() -> str:
    return str(uuid.uuid4())


def make_saga(
    saga_id: str | None = None,
    *,
    created_at: datetime = T0,
    status: SagaStatus = SagaStatus.COMPENSATING,
    due_at: datetime | None = T0 + timedelta(seconds=30),
) -> CreateOrderSaga:
    """A saga with every field set to something a careless translation would lose."""
    saga_id = saga_id or new_id()
    command_id = new_id()
    return CreateOrderSaga(
        id=saga_id,
        customer_id="customer-ü-42",
        order_details={
            "foodItems": [{"id": "pizza", "price": 12.5, "quantity": 2}, {"id": "cola", "price": 2, "quantity": 1}],
            "deliveryFee": 3.25,
            "note": "ring twice — 🛵",
            "extra": {"list": [1, None, True], "empty": {}},
        },
        amount_cents=2**40 + 7,
        currency="EUR",
        status=status,
        current_step=Step.AUTHORIZE_PAYMENT,
        created_at=created_at,
        updated_at=created_at + timedelta(seconds=5, microseconds=1),
        awaiting=None
        if due_at is None
        else Awaiting(
            "revert_payment",
            command_id,
            {"payment_id": "pay-1", "order_id": "order-1", "saga_id": saga_id, "reason": "declined"},
            attempts=2,
            due_at=due_at,
            sent=False,
        ),
        compensations=[
            Undo(Compensation.REVERT_PAYMENT, "pay-1", UndoStatus.RUNNING, reason="declined"),
            Undo(Compensation.CANCEL_ORDER, "order-1"),
            Undo(Compensation.CANCEL_ORDER, "order-2", UndoStatus.UNCONFIRMED, cleanup=True, outcome="not confirmed"),
        ],
        order_id="order-1",
        payment_id="pay-1",
        payment_info={"card": {"last4": "4242", "expires": "12/30"}},
        error="AUTHORIZE_PAYMENT failed: card declined",
        completed_at=created_at + timedelta(minutes=1) if status.is_final else None,
        cancel_requested=True,
        ignored_events=3,
        history=[
            HistoryEntry(created_at, HistoryKind.COMMAND, "create_order", new_id()),
            HistoryEntry(created_at + timedelta(seconds=1), HistoryKind.EVENT, "order.created", "event-1"),
            HistoryEntry(
                created_at + timedelta(seconds=2), HistoryKind.IGNORED, "order.created", "event-1", "duplicate"
            ),
            HistoryEntry(created_at + timedelta(seconds=3), HistoryKind.DEADLINE, "authorize_payment", command_id),
            HistoryEntry(created_at + timedelta(seconds=4), HistoryKind.STATUS, "COMPENSATING", None, "declined"),
        ],
    )


def holding(order_id: str | None, payment_id: str | None, status: SagaStatus = SagaStatus.FAILED) -> CreateOrderSaga:
    """A saga holding this order and payment, and no other resource."""
    saga = make_saga(status=status, due_at=None)
    saga.order_id, saga.payment_id, saga.compensations = order_id, payment_id, []
    return saga


def order_ref(order_id: str) -> ResourceRef:
    return ResourceRef(Resource.ORDER, order_id)


def payment_ref(payment_id: str) -> ResourceRef:
    return ResourceRef(Resource.PAYMENT, payment_id)


def make_command(saga_id: str, at: datetime = T0, command_type: str = "create_order") -> Command:
    return Command(
        command_type, saga_id, {"saga_id": saga_id, "order_details": {"note": "ß", "n": [1, 2.5]}}, new_id(), at
    )


def run_in_threads(*targets: Callable[[], None]) -> None:
    """Runs the targets at once and re-raises the first error any of them hit."""
    errors: list[BaseException] = []

    def guarded(target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
            except BaseException as error:  # reported in the test's own thread below
                errors.append(error)

        return run

    threads = [threading.Thread(target=guarded(target)) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.is_alive(), "a thread did not finish"
    if errors:
        raise errors[0]


class PersistenceContract:
    @pytest.fixture
    def uow_factory(self) -> UnitOfWorkFactory:
        raise NotImplementedError("each adapter's test class provides its units of work")

    def store(self, uow_factory: UnitOfWorkFactory, *sagas: CreateOrderSaga, commands: Sequence[Command] = ()) -> None:
        with uow_factory() as uow:
            for saga in sagas:
                uow.sagas.add(saga)
            uow.outbox.add(commands)
            uow.commit()

    def load(self, uow_factory: UnitOfWorkFactory, saga_id: str) -> CreateOrderSaga | None:
        with uow_factory() as uow:
            return uow.sagas.get(saga_id)

    # ------------------------------------------------------------- sagas

    def test_a_saga_comes_back_with_every_field(self, uow_factory: UnitOfWorkFactory) -> None:
        saga = make_saga()
        self.store(uow_factory, saga)

        loaded = self.load(uow_factory, saga.id)

        assert loaded == saga
        assert loaded is not saga

    def test_datetimes_come_back_timezone_aware_in_utc(self, uow_factory: UnitOfWorkFactory) -> None:
        paris = timezone(timedelta(hours=2))
        saga = make_saga(created_at=T0.astimezone(paris), status=SagaStatus.FAILED, due_at=None)
        self.store(uow_factory, saga)

        loaded = self.load(uow_factory, saga.id)

        assert loaded is not None
        moments = [loaded.created_at, loaded.updated_at, loaded.completed_at, *(entry.at for entry in loaded.history)]
        for moment in moments:
            assert moment is not None and moment.utcoffset() == timedelta(0)
        assert loaded.created_at == T0
        assert loaded.created_at.microsecond == 123456

    def test_a_long_history_comes_back_whole(self, uow_factory: UnitOfWorkFactory) -> None:
        saga = make_saga()
        saga.history = [
            HistoryEntry(T0 + timedelta(milliseconds=i), HistoryKind.IGNORED, "order.created", new_id(), "x" * 200)
            for i in range(3000)
        ]
        self.store(uow_factory, saga)

        loaded = self.load(uow_factory, saga.id)

        assert loaded is not None and loaded.history == saga.history

    def test_an_unknown_saga_is_none(self, uow_factory: UnitOfWorkFactory) -> None:
        assert self.load(uow_factory, new_id()) is None

    def test_changing_a_loaded_saga_without_saving_changes_nothing(self, uow_factory: UnitOfWorkFactory) -> None:
        saga = make_saga()
        as_added = deepcopy(saga)
        with uow_factory() as uow:
            uow.sagas.add(saga)
            saga.status = SagaStatus.COMPLETED  # after add: the stored copy must not follow
            saga.history.clear()
            uow.commit()

        with uow_factory() as uow:
            loaded = uow.sagas.get(saga.id)
            assert loaded is not None
            loaded.status = SagaStatus.CANCELLED
            loaded.order_details["note"] = "changed"
            loaded.history.clear()
            uow.commit()

        assert self.load(uow_factory, saga.id) == as_added

    def test_save_stores_the_change_and_bumps_the_version(self, uow_factory: UnitOfWorkFactory) -> None:
        saga = make_saga()
        self.store(uow_factory, saga)

        with uow_factory() as uow:
            loaded = uow.sagas.get(saga.id)
            assert loaded is not None and loaded.version == 0
            loaded.status = SagaStatus.COMPLETED
            loaded.awaiting = None
            loaded.history.append(HistoryEntry(T0 + timedelta(hours=1), HistoryKind.STATUS, "COMPLETED"))
            uow.sagas.save(loaded)
            assert loaded.version == 1
            loaded.error = None
            uow.sagas.save(loaded)  # twice in one unit of work: builds on its own change
            assert loaded.version == 2
            uow.commit()

        assert self.load(uow_factory, saga.id) == loaded

    def test_saving_a_stale_version_is_a_concurrency_conflict(self, uow_factory: UnitOfWorkFactory) -> None:
        saga = make_saga()
        self.store(uow_factory, saga)
        stale = self.load(uow_factory, saga.id)
        with uow_factory() as uow:
            fresh = uow.sagas.get(saga.id)
            assert fresh is not None
            fresh.error = "the change that won"
            uow.sagas.save(fresh)
            uow.commit()

        assert stale is not None
        stale.error = "the change that lost"
        with pytest.raises(ConcurrencyConflict), uow_factory() as uow:
            uow.sagas.save(stale)
            uow.commit()

        stored = self.load(uow_factory, saga.id)
        assert stored is not None and stored.error == "the change that won" and stored.version == 1

    def test_saving_a_saga_never_added_is_a_concurrency_conflict(self, uow_factory: UnitOfWorkFactory) -> None:
        with pytest.raises(ConcurrencyConflict), uow_factory() as uow:
            uow.sagas.save(make_saga())
            uow.commit()

    def test_a_failed_unit_of_work_leaves_nothing_behind(self, uow_factory: UnitOfWorkFactory) -> None:
        saga = make_saga()
        self.store(uow_factory, saga)
        stale = self.load(uow_factory, saga.id)
        with uow_factory() as uow:
            fresh = uow.sagas.get(saga.id)
            assert fresh is not None
            uow.sagas.save(fresh)
            uow.commit()
        newcomer = make_saga()

        assert stale is not None
        with pytest.raises(ConcurrencyConflict), uow_factory() as uow:
            uow.sagas.add(newcomer)
            uow.outbox.add([make_command(newcomer.id)])
            uow.sagas.save(stale)
            uow.commit()

        assert self.load(uow_factory, newcomer.id) is None
        with uow_factory() as uow:
            assert uow.outbox.pending_count() == 0

    def test_adding_a_taken_id_is_a_duplicate_saga(self, uow_factory: UnitOfWorkFactory) -> None:
        saga = make_saga()
        self.store(uow_factory, saga)
        impostor = make_saga(saga.id, status=SagaStatus.STARTED)
        impostor.customer_id = "someone else"

        with pytest.raises(DuplicateSaga), uow_factory() as uow:
            uow.sagas.add(impostor)
            uow.commit()

        assert self.load(uow_factory, saga.id) == saga

    def test_sagas_added_together_read_back_each_as_added_and_save_as_usual(
        self, uow_factory: UnitOfWorkFactory
    ) -> None:
        added = [make_saga(), make_saga(status=SagaStatus.STARTED), make_saga(due_at=None)]
        with uow_factory() as uow:
            uow.sagas.add_many(added)
            uow.sagas.add_many([])
            uow.commit()

        assert [self.load(uow_factory, saga.id) for saga in added] == added
        with uow_factory() as uow:
            saga = uow.sagas.get(added[1].id)
            assert saga is not None
            saga.error = "changed"
            uow.sagas.save(saga)
            uow.commit()
        assert self.load(uow_factory, added[1].id) == saga

    def test_sagas_added_together_with_one_taken_id_are_a_duplicate_saga_and_none_is_written(
        self, uow_factory: UnitOfWorkFactory
    ) -> None:
        taken = make_saga()
        self.store(uow_factory, taken)
        impostor = make_saga(taken.id, status=SagaStatus.STARTED)
        others = [make_saga(), make_saga()]

        with pytest.raises(DuplicateSaga), uow_factory() as uow:
            uow.sagas.add_many([others[0], impostor, others[1]])
            uow.commit()

        assert self.load(uow_factory, taken.id) == taken
        assert [self.load(uow_factory, saga.id) for saga in others] == [None, None]

    def test_adding_one_id_twice_in_a_unit_of_work_is_a_duplicate_saga(self, uow_factory: UnitOfWorkFactory) -> None:
        saga = make_saga()
        with pytest.raises(DuplicateSaga), uow_factory() as uow:
            uow.sagas.add(saga)
            uow.sagas.add(saga)
            uow.commit()

        assert self.load(uow_factory, saga.id) is None

    # -------------------------------------------------------- transactions

    def test_leaving_without_commit_discards_everything(self, uow_factory: UnitOfWorkFactory) -> None:
        saga = make_saga()
        with uow_factory() as uow:
            uow.sagas.add(saga)
            uow.outbox.add([make_command(saga.id)])
            assert uow.inbox.record("message-1", saga.id, T0)

        with uow_factory() as uow:
            assert uow.sagas.get(saga.id) is None
            assert uow.outbox.pending_count() == 0
            assert uow.outbox.claim_due(T0 + timedelta(days=1), 10) == []
            assert uow.inbox.record("message-1", saga.id, T0)

    def test_an_error_inside_the_block_discards_everything(self, uow_factory: UnitOfWorkFactory) -> None:
        saga = make_saga()
        with pytest.raises(RuntimeError), uow_factory() as uow:
            uow.sagas.add(saga)
            raise RuntimeError("the use case failed")

        assert self.load(uow_factory, saga.id) is None

    def test_rollback_discards_the_work_so_far_and_the_unit_of_work_goes_on(
        self, uow_factory: UnitOfWorkFactory
    ) -> None:
        discarded, kept = make_saga(), make_saga()
        with uow_factory() as uow:
            uow.sagas.add(discarded)
            uow.rollback()
            assert uow.sagas.get(discarded.id) is None
            uow.sagas.add(kept)
            uow.commit()

        assert self.load(uow_factory, discarded.id) is None
        assert self.load(uow_factory, kept.id) == kept

    def test_work_after_a_commit_needs_its_own_commit(self, uow_factory: UnitOfWorkFactory) -> None:
        committed, uncommitted = make_saga(), make_saga()
        with uow_factory() as uow:
            uow.sagas.add(committed)
            uow.commit()
            uow.sagas.add(uncommitted)
            uow.rollback()
            uow.rollback()  # harmless when there is nothing to undo

        assert self.load(uow_factory, committed.id) == committed
        assert self.load(uow_factory, uncommitted.id) is None

    def test_uncommitted_work_is_invisible_to_another_unit_of_work(self, uow_factory: UnitOfWorkFactory) -> None:
        saga = make_saga()
        seen: dict[str, object] = {}

        def look() -> None:
            with uow_factory() as uow:
                seen["saga"] = uow.sagas.get(saga.id)
                seen["pending"] = uow.outbox.pending_count()
                seen["first record"] = uow.inbox.record("message-1", saga.id, T0)

        reader = threading.Thread(target=look)
        with uow_factory() as writer:
            writer.sagas.add(saga)
            writer.outbox.add([make_command(saga.id)])
            writer.inbox.record("message-1", saga.id, T0)
            reader.start()
            # The reader either finishes now or, on SQLite, waits for the writer to end.
            reader.join(timeout=0.5)
        reader.join(timeout=RENDEZVOUS_TIMEOUT)

        assert not reader.is_alive()
        assert seen == {"saga": None, "pending": 0, "first record": True}

    def test_concurrent_read_modify_write_loses_no_update(self, uow_factory: UnitOfWorkFactory) -> None:
        saga = make_saga()
        saga.ignored_events = 0
        self.store(uow_factory, saga)
        increments_per_thread = 15

        def increment_repeatedly() -> None:
            for _ in range(increments_per_thread):
                while True:
                    try:
                        with uow_factory() as uow:
                            loaded = uow.sagas.get(saga.id)
                            assert loaded is not None
                            loaded.ignored_events += 1
                            uow.sagas.save(loaded)
                            uow.commit()
                        break
                    except ConcurrencyConflict:
                        continue

        run_in_threads(increment_repeatedly, increment_repeatedly)

        stored = self.load(uow_factory, saga.id)
        assert stored is not None
        assert stored.ignored_events == 2 * increments_per_thread
        assert stored.version == 2 * increments_per_thread

    # ------------------------------------------------------------ listing

    def test_page_lists_newest_first_and_pages_through_ties_on_created_at(self, uow_factory: UnitOfWorkFactory) -> None:
        offsets = [0, 0, 1, 1, 1, 2, 3]  # seconds after T0; equal ones order by id
        sagas = [make_saga(created_at=T0 + timedelta(seconds=offset)) for offset in offsets]
        self.store(uow_factory, *sagas)
        expected = [saga.id for saga in sorted(sagas, key=lambda s: (s.created_at, s.id), reverse=True)]

        listed: list[str] = []
        cursor: PageCursor | None = None
        pages = 0
        with uow_factory() as uow:
            while True:
                page = uow.sagas.page(None, 2, cursor)
                pages += 1
                listed += [saga.id for saga in page.sagas]
                if page.next_cursor is None:
                    break
                assert len(page.sagas) == 2
                cursor = page.next_cursor

        assert listed == expected
        assert pages == 4

    def test_page_filters_by_status_and_says_when_nothing_more_exists(self, uow_factory: UnitOfWorkFactory) -> None:
        started = [make_saga(created_at=T0 + timedelta(seconds=i), status=SagaStatus.STARTED) for i in range(4)]
        completed = [
            make_saga(created_at=T0 + timedelta(seconds=i), status=SagaStatus.COMPLETED, due_at=None) for i in range(3)
        ]
        self.store(uow_factory, *started, *completed)

        with uow_factory() as uow:
            first = uow.sagas.page(SagaStatus.STARTED, 2, None)
            assert first.next_cursor is not None
            second = uow.sagas.page(SagaStatus.STARTED, 2, first.next_cursor)
            everything = uow.sagas.page(SagaStatus.COMPLETED, 3, None)
            none = uow.sagas.page(SagaStatus.CANCELLED, 10, None)

        assert [s.id for s in first.sagas + second.sagas] == [s.id for s in reversed(started)]
        assert second.next_cursor is None  # exactly two pages' worth: no empty third page
        assert [s.id for s in everything.sagas] == [s.id for s in reversed(completed)]
        assert everything.next_cursor is None
        assert none.sagas == [] and none.next_cursor is None
        assert first.sagas[0] == started[-1]

    def test_search_finds_sagas_by_exact_saga_customer_or_order_id_newest_first(
        self, uow_factory: UnitOfWorkFactory
    ) -> None:
        older, newer, other = (make_saga(created_at=T0 + timedelta(seconds=i)) for i in range(3))
        older.customer_id = newer.customer_id = "cust-search"
        newer.order_id = "order-search"
        other.customer_id = "someone-else"
        self.store(uow_factory, older, newer, other)

        with uow_factory() as uow:
            by_customer = uow.sagas.search("cust-search", 10)
            by_order = uow.sagas.search("order-search", 10)
            by_id = uow.sagas.search(other.id, 10)
            limited = uow.sagas.search("cust-search", 1)
            partial = uow.sagas.search("cust-sea", 10)

        assert [s.id for s in by_customer] == [newer.id, older.id]
        assert [s.id for s in by_order] == [newer.id] and by_order[0] == newer
        assert [s.id for s in by_id] == [other.id]
        assert [s.id for s in limited] == [newer.id]
        assert partial == []

    @pytest.mark.parametrize("term", ["cust-search\x00", "\x00", "\udc00"])
    def test_search_for_text_no_saga_can_hold_finds_nothing(self, uow_factory: UnitOfWorkFactory, term: str) -> None:
        saga = make_saga()
        saga.customer_id = "cust-search"
        self.store(uow_factory, saga)

        with uow_factory(read_only=True) as uow:
            assert uow.sagas.search(term, 10) == []

    def test_page_needs_a_positive_limit(self, uow_factory: UnitOfWorkFactory) -> None:
        with uow_factory() as uow, pytest.raises(ValueError):
            uow.sagas.page(None, 0, None)

    def test_resources_page_reads_what_each_saga_holds_and_undoes_in_page_order(
        self, uow_factory: UnitOfWorkFactory
    ) -> None:
        sagas = [make_saga(created_at=T0 + timedelta(seconds=offset)) for offset in [0, 1, 1, 2, 3]]
        sagas[0].status, sagas[0].compensations = SagaStatus.COMPLETED, []
        self.store(uow_factory, *sagas)

        listed: list[SagaResources] = []
        cursor: PageCursor | None = None
        with uow_factory(read_only=True) as uow:
            while True:
                page = uow.sagas.resources_page(2, cursor)
                listed += page.sagas
                if page.next_cursor is None:
                    break
                cursor = page.next_cursor
            with pytest.raises(ValueError):
                uow.sagas.resources_page(0, None)
        ordered = sorted(sagas, key=lambda s: (s.created_at, s.id), reverse=True)
        assert listed == [SagaResources.of(saga) for saga in ordered]
        assert listed[-1].compensations == () and len(listed[0].compensations) == 3

    def test_due_lists_passed_deadlines_earliest_first(self, uow_factory: UnitOfWorkFactory) -> None:
        late = make_saga(due_at=T0 + timedelta(seconds=10), status=SagaStatus.STARTED)
        later = make_saga(due_at=T0 + timedelta(seconds=10))  # same deadline: by id
        earliest = make_saga(due_at=T0 + timedelta(seconds=5))
        exactly_now = make_saga(due_at=T0 + timedelta(seconds=15))
        not_yet = make_saga(due_at=T0 + timedelta(seconds=16))
        finished = make_saga(due_at=None, status=SagaStatus.COMPLETED)
        # A final saga is due while it awaits the reply to a clean-up.
        final_cleaning_up = make_saga(due_at=T0 + timedelta(seconds=1), status=SagaStatus.FAILED)
        self.store(uow_factory, late, later, earliest, exactly_now, not_yet, finished, final_cleaning_up)
        tied = sorted([late.id, later.id])

        with uow_factory() as uow:
            due = uow.sagas.due(T0 + timedelta(seconds=15), 10)
            first_two = uow.sagas.due(T0 + timedelta(seconds=15), 2)

        assert due == [final_cleaning_up.id, earliest.id, *tied, exactly_now.id]
        assert first_two == [final_cleaning_up.id, earliest.id]

    def test_a_saved_saga_moves_in_or_out_of_the_due_list(self, uow_factory: UnitOfWorkFactory) -> None:
        saga = make_saga(due_at=T0)
        self.store(uow_factory, saga)
        with uow_factory() as uow:
            loaded = uow.sagas.get(saga.id)
            assert loaded is not None and uow.sagas.due(T0, 10) == [saga.id]
            loaded.status = SagaStatus.COMPLETED
            loaded.awaiting = None
            uow.sagas.save(loaded)
            assert uow.sagas.due(T0, 10) == []  # a unit of work sees its own change
            uow.commit()

        with uow_factory() as uow:
            assert uow.sagas.due(T0 + timedelta(days=1), 10) == []

    def test_count_by_status_counts_every_status(self, uow_factory: UnitOfWorkFactory) -> None:
        self.store(
            uow_factory,
            *(make_saga(status=SagaStatus.STARTED) for _ in range(3)),
            make_saga(status=SagaStatus.COMPLETED, due_at=None),
            *(make_saga(status=SagaStatus.FAILED, due_at=None) for _ in range(2)),
        )

        with uow_factory() as uow:
            counts = uow.sagas.count_by_status()

        assert counts == {
            SagaStatus.STARTED: 3,
            SagaStatus.COMPENSATING: 0,
            SagaStatus.COMPLETED: 1,
            SagaStatus.FAILED: 2,
            SagaStatus.CANCELLED: 0,
            SagaStatus.COMPENSATION_FAILED: 0,
        }

    # ------------------------------------------------------------- outbox

    def test_a_claimed_command_equals_the_added_one(self, uow_factory: UnitOfWorkFactory) -> None:
        saga = make_saga()
        command = make_command(saga.id, T0.astimezone(timezone(timedelta(hours=-5))), "authorize_payment")
        self.store(uow_factory, saga, commands=[command])

        with uow_factory() as uow:
            [entry] = uow.outbox.claim_due(T0, 10)
            uow.commit()

        assert entry.command == command
        assert entry.command.timestamp.utcoffset() == timedelta(0)
        assert entry.attempts == 0
        assert isinstance(entry.id, int)

    def test_claim_takes_due_entries_oldest_first_up_to_the_limit(self, uow_factory: UnitOfWorkFactory) -> None:
        saga_id = new_id()
        newest = make_command(saga_id, T0 + timedelta(seconds=2))
        oldest = make_command(saga_id, T0)
        middle = make_command(saga_id, T0 + timedelta(seconds=1))
        future = make_command(saga_id, T0 + timedelta(seconds=60))
        self.store(uow_factory, commands=[newest, oldest, middle, future])

        with uow_factory() as uow:
            first = uow.outbox.claim_due(T0 + timedelta(seconds=5), 2)
            rest = uow.outbox.claim_due(T0 + timedelta(seconds=5), 10)
            uow.commit()

        assert [entry.command for entry in first] == [oldest, middle]
        assert [entry.command for entry in rest] == [newest]  # `future` is not due yet

    def test_a_committed_claim_records_its_entries_as_sent(self, uow_factory: UnitOfWorkFactory) -> None:
        commands = [make_command(new_id(), T0) for _ in range(3)]
        self.store(uow_factory, commands=commands)

        with uow_factory() as uow:
            claimed = uow.outbox.claim_due(T0, 10)
            assert uow.outbox.pending_count() == 0  # its own claim, before commit
            uow.commit()
        with uow_factory() as uow:
            again = uow.outbox.claim_due(T0 + timedelta(days=1), 10)
            by_id = uow.outbox.claim_by_message_ids([command.message_id for command in commands], T0)
            pending = uow.outbox.pending_count()
            awaiting = [uow.outbox.awaiting_delivery(command.message_id) for command in commands]

        assert [entry.command for entry in claimed] == commands
        assert again == [] and by_id == []
        assert pending == 0 and awaiting == [False, False, False]

    def test_a_claim_that_is_not_committed_leaves_entries_claimable(self, uow_factory: UnitOfWorkFactory) -> None:
        command = make_command(new_id())
        self.store(uow_factory, commands=[command])

        with uow_factory() as uow:
            assert len(uow.outbox.claim_due(T0, 10)) == 1
        with uow_factory() as uow:
            assert len(uow.outbox.claim_by_message_ids([command.message_id], T0)) == 1
            uow.rollback()  # a relay that died before its commit: the command goes again
            assert uow.outbox.awaiting_delivery(command.message_id)
            assert uow.outbox.pending_count() == 1

        with uow_factory() as uow:
            assert [entry.command for entry in uow.outbox.claim_due(T0, 10)] == [command]

    def test_a_put_back_entry_alone_is_claimed_again(self, uow_factory: UnitOfWorkFactory) -> None:
        commands = [make_command(new_id()) for _ in range(3)]
        self.store(uow_factory, commands=commands)
        with uow_factory() as uow:
            entries = uow.outbox.claim_due(T0, 10)
            uow.outbox.retry([RetryLater(entries[1].id, T0, "broker unavailable")])
            uow.outbox.retry([])
            uow.commit()

        with uow_factory() as uow:
            assert uow.outbox.pending_count() == 1
            again = uow.outbox.claim_due(T0 + timedelta(days=1), 10)
        assert [entry.command for entry in again] == [commands[1]]

    def test_a_retry_puts_an_entry_back_at_the_given_time(self, uow_factory: UnitOfWorkFactory) -> None:
        command = make_command(new_id())
        self.store(uow_factory, commands=[command])
        retry_at = T0 + timedelta(seconds=3)
        with uow_factory() as uow:
            [entry] = uow.outbox.claim_due(T0, 10)
            uow.outbox.retry([RetryLater(entry.id, retry_at, "broker unavailable")])
            uow.commit()

        with uow_factory() as uow:
            assert uow.outbox.awaiting_delivery(command.message_id)
            too_soon = uow.outbox.claim_due(retry_at - timedelta(microseconds=1), 10)
            [retried] = uow.outbox.claim_due(retry_at, 10)
            uow.outbox.retry([RetryLater(retried.id, retry_at, "still unavailable")])
            [third] = uow.outbox.claim_due(retry_at, 10)
            uow.outbox.retry([RetryLater(third.id, retry_at, "unavailable again")])
            assert uow.outbox.pending_count() == 1
            uow.commit()

        assert too_soon == []
        assert (retried.id, retried.command, retried.attempts) == (entry.id, command, 1)
        assert third.attempts == 2

    def test_pending_count_counts_unsent_entries(self, uow_factory: UnitOfWorkFactory) -> None:
        with uow_factory() as uow:
            assert uow.outbox.pending_count() == 0
            uow.outbox.add([make_command(new_id()) for _ in range(4)])
            assert uow.outbox.pending_count() == 4  # its own work, before commit
            uow.outbox.add([])
            uow.commit()

        with uow_factory() as uow:
            assert len(uow.outbox.claim_due(T0, 1)) == 1
            uow.commit()

        with uow_factory() as uow:
            assert uow.outbox.pending_count() == 3

    def test_oldest_pending_at_is_the_timestamp_of_the_oldest_unsent_command(
        self, uow_factory: UnitOfWorkFactory
    ) -> None:
        with uow_factory() as uow:
            assert uow.outbox.oldest_pending_at() is None
            uow.outbox.add([make_command(new_id(), T0 + timedelta(seconds=s)) for s in (5, 1, 9)])
            uow.commit()
        with uow_factory() as uow:
            assert uow.outbox.oldest_pending_at() == T0 + timedelta(seconds=1)
            [first] = uow.outbox.claim_due(T0 + timedelta(days=1), 1)
            uow.commit()
        assert first.command.timestamp == T0 + timedelta(seconds=1)
        with uow_factory() as uow:
            assert uow.outbox.oldest_pending_at() == T0 + timedelta(seconds=5)  # the sent one no longer counts

    def test_held_commands_wait_for_their_hold_and_are_claimed_by_message_id(
        self, uow_factory: UnitOfWorkFactory
    ) -> None:
        held, other = make_command(new_id()), make_command(new_id())
        hold_until = T0 + timedelta(seconds=5)
        with uow_factory() as uow:
            uow.outbox.add([held], hold_until=hold_until)
            uow.outbox.add([other], hold_until=hold_until)
            uow.commit()

        with uow_factory() as uow:
            assert uow.outbox.claim_due(hold_until - timedelta(microseconds=1), 10) == []
            [entry] = uow.outbox.claim_by_message_ids([held.message_id, new_id()], T0)
            assert uow.outbox.claim_by_message_ids([], T0) == []
            uow.commit()

        with uow_factory() as uow:
            assert uow.outbox.pending_count() == 1
            after_hold = uow.outbox.claim_due(hold_until, 10)
            assert not uow.outbox.awaiting_delivery(held.message_id)
            assert uow.outbox.claim_by_message_ids([held.message_id], T0) == []  # delivered: never again
        assert (entry.command, entry.attempts) == (held, 0)
        assert [entry.command for entry in after_hold] == [other]  # its process never sent it

    def test_claiming_by_message_id_takes_every_unsent_copy_in_the_order_added(
        self, uow_factory: UnitOfWorkFactory
    ) -> None:
        first, second, withdrawn = make_command(new_id()), make_command(new_id()), make_command(new_id())
        resend = Command(first.type, first.saga_id, first.payload, first.message_id, T0 + timedelta(seconds=30))
        self.store(uow_factory, commands=[first, second, withdrawn])
        with uow_factory() as uow:
            uow.outbox.add([resend])
            uow.outbox.discard_unsent(withdrawn.saga_id, T0)
            uow.commit()

        with uow_factory() as uow:
            claimed = uow.outbox.claim_by_message_ids([second.message_id, withdrawn.message_id, first.message_id], T0)

        assert [entry.command for entry in claimed] == [first, second, resend]

    def test_a_retry_ends_a_hold_and_counts_the_attempt(self, uow_factory: UnitOfWorkFactory) -> None:
        held = make_command(new_id())
        with uow_factory() as uow:
            uow.outbox.add([held], hold_until=T0 + timedelta(hours=1))
            uow.commit()
        with uow_factory() as uow:
            [claimed] = uow.outbox.claim_by_message_ids([held.message_id], T0)
            uow.outbox.retry([RetryLater(claimed.id, T0 + timedelta(seconds=1), "broker unavailable")])
            uow.commit()
        with uow_factory() as uow:
            assert uow.outbox.claim_due(T0, 10) == []
            [entry] = uow.outbox.claim_due(T0 + timedelta(seconds=1), 10)
        assert entry.command == held and entry.attempts == 1

    def test_awaiting_delivery_is_true_only_while_a_copy_is_unsent(self, uow_factory: UnitOfWorkFactory) -> None:
        command = make_command(new_id())
        resend = Command(command.type, command.saga_id, command.payload, command.message_id, T0 + timedelta(seconds=30))
        self.store(uow_factory, commands=[command])

        with uow_factory() as uow:
            assert uow.outbox.awaiting_delivery(command.message_id)
            assert not uow.outbox.awaiting_delivery(new_id())
            assert len(uow.outbox.claim_due(T0, 10)) == 1
            assert not uow.outbox.awaiting_delivery(command.message_id)  # its own claim
            uow.outbox.add([resend])  # a re-send keeps its message_id
            assert uow.outbox.awaiting_delivery(command.message_id)
            uow.commit()

    @pytest.mark.parametrize("sent", [True, False], ids=["sent", "put-back"])
    def test_a_withdrawal_waits_for_a_send_in_progress(self, uow_factory: UnitOfWorkFactory, sent: bool) -> None:
        # A saga that starts undoing while its step command is being sent: the
        # compensation must leave after that command, or the command must not leave.
        command = make_command(new_id())
        self.store(uow_factory, commands=[command])
        claimed = threading.Event()
        seen: list[str] = []

        def relay() -> None:
            with uow_factory() as uow:
                [entry] = uow.outbox.claim_by_message_ids([command.message_id], T0)
                claimed.set()
                time.sleep(0.3)  # the transport takes its time
                if not sent:
                    uow.outbox.retry([RetryLater(entry.id, T0, "broker unavailable")])
                seen.append("relay done")
                uow.commit()

        def withdraw() -> None:
            assert claimed.wait(RENDEZVOUS_TIMEOUT)
            with uow_factory() as uow:
                withdrawn = uow.outbox.discard_unsent(command.saga_id, T0)
                seen.append(f"withdrew {withdrawn}")
                uow.commit()

        run_in_threads(relay, withdraw)

        assert seen == ["relay done", "withdrew 0" if sent else "withdrew 1"]
        with uow_factory() as uow:
            assert uow.outbox.pending_count() == 0

    def test_discard_unsent_withdraws_only_that_sagas_unsent_commands(self, uow_factory: UnitOfWorkFactory) -> None:
        saga_id, other_saga = new_id(), new_id()
        sent, unsent, other = make_command(saga_id), make_command(saga_id), make_command(other_saga)
        self.store(uow_factory, commands=[sent, unsent, other])
        with uow_factory() as uow:
            first = uow.outbox.claim_due(T0, 1)
            uow.commit()
        assert first[0].command == sent

        with uow_factory() as uow:
            assert uow.outbox.discard_unsent(saga_id, T0) == 1
            assert uow.outbox.discard_unsent(new_id(), T0) == 0
            uow.commit()

        with uow_factory() as uow:
            remaining = uow.outbox.claim_due(T0 + timedelta(days=1), 10)
            assert not uow.outbox.awaiting_delivery(unsent.message_id)
        assert [entry.command for entry in remaining] == [other]

    def test_purge_sent_deletes_only_entries_sent_before_the_cutoff(self, uow_factory: UnitOfWorkFactory) -> None:
        commands = [make_command(new_id()) for _ in range(4)]
        self.store(uow_factory, commands=commands)
        with uow_factory() as uow:
            assert len(uow.outbox.claim_due(T0, 2)) == 2
            assert len(uow.outbox.claim_due(T0 + timedelta(hours=2), 1)) == 1
            uow.commit()

        with uow_factory() as uow:
            purged = uow.outbox.purge_sent(T0 + timedelta(hours=1), 10)
            uow.commit()
        with uow_factory() as uow:
            again = uow.outbox.purge_sent(T0 + timedelta(hours=1), 10)
            pending = uow.outbox.pending_count()
            unsent = uow.outbox.claim_due(T0 + timedelta(days=1), 10)

        assert purged in (0, 2)  # a store that keeps no sent entries has nothing to purge
        assert again == 0
        assert pending == 1 and [entry.command for entry in unsent] == [commands[3]]

    # -------------------------------------------------------------- inbox

    def test_purge_forgets_only_message_ids_consumed_before_the_cutoff(self, uow_factory: UnitOfWorkFactory) -> None:
        old, recent, saga_id = new_id(), new_id(), new_id()
        with uow_factory() as uow:
            uow.inbox.record(old, saga_id, T0)
            uow.inbox.record(recent, saga_id, T0 + timedelta(days=2))
            uow.commit()

        with uow_factory() as uow:
            assert uow.inbox.purge(T0 + timedelta(days=1), 10) == 1
            uow.commit()

        with uow_factory() as uow:
            assert uow.inbox.purge(T0 + timedelta(days=1), 10) == 0
            assert uow.inbox.record(old, saga_id, T0 + timedelta(days=3)) is True
            assert uow.inbox.record(recent, saga_id, T0 + timedelta(days=3)) is False

    def test_the_inbox_records_a_message_once(self, uow_factory: UnitOfWorkFactory) -> None:
        saga_id = new_id()
        with uow_factory() as uow:
            assert uow.inbox.record("message-1", saga_id, T0) is True
            assert uow.inbox.record("message-1", saga_id, T0) is False
            uow.commit()

        with uow_factory() as uow:
            assert uow.inbox.record("message-1", saga_id, T0) is False
            assert uow.inbox.record("message-2", saga_id, T0) is True

    def test_the_same_message_id_for_another_saga_is_another_message(self, uow_factory: UnitOfWorkFactory) -> None:
        first, second = new_id(), new_id()
        with uow_factory() as uow:
            assert uow.inbox.record("message-1", first, T0) is True
            uow.commit()

        with uow_factory() as uow:
            assert uow.inbox.record("message-1", second, T0) is True
            assert uow.inbox.record("message-1", first, T0) is False
            assert uow.inbox.record("message-1", second, T0) is False

    def test_a_batch_of_messages_is_recorded_once_each(self, uow_factory: UnitOfWorkFactory) -> None:
        first, second = new_id(), new_id()
        with uow_factory() as uow:
            assert uow.inbox.record("message-1", first, T0) is True
            uow.commit()

        with uow_factory() as uow:
            pairs = [(first, "message-1"), (first, "message-2"), (second, "message-1"), (first, "message-2")]
            assert uow.inbox.record_many(pairs, T0) == {(first, "message-2"), (second, "message-1")}
            assert uow.inbox.record_many([], T0) == set()
            uow.commit()

        with uow_factory() as uow:
            assert uow.inbox.record_many([(first, "message-2"), (second, "message-3")], T0) == {(second, "message-3")}
            assert uow.inbox.record("message-1", second, T0) is False

    def test_a_batch_of_sagas_reads_back_by_id_leaving_out_unknown_ids(self, uow_factory: UnitOfWorkFactory) -> None:
        first, second = make_saga(), make_saga(status=SagaStatus.STARTED)
        self.store(uow_factory, first, second)

        with uow_factory() as uow:
            found = uow.sagas.get_many([second.id, new_id(), first.id, second.id])
            assert uow.sagas.get_many([]) == {}

        assert set(found) == {first.id, second.id}
        assert found[first.id] == self.load(uow_factory, first.id)
        assert found[second.id] == self.load(uow_factory, second.id)

    def test_sagas_read_as_a_batch_save_like_sagas_read_alone(self, uow_factory: UnitOfWorkFactory) -> None:
        saga = make_saga()
        self.store(uow_factory, saga)

        with uow_factory() as uow:
            loaded = uow.sagas.get_many([saga.id])[saga.id]
            loaded.status = SagaStatus.FAILED
            loaded.history.append(HistoryEntry(T0 + timedelta(seconds=9), HistoryKind.STATUS, "FAILED"))
            uow.sagas.save(loaded)
            uow.commit()

        stored = self.load(uow_factory, saga.id)
        assert stored is not None
        assert stored.status is SagaStatus.FAILED
        assert stored.history == loaded.history
        assert stored.version == saga.version + 1

    def test_sagas_saved_together_keep_each_ones_history_and_version(self, uow_factory: UnitOfWorkFactory) -> None:
        first, second, stale = make_saga(), make_saga(), make_saga()
        self.store(uow_factory, first, second, stale)
        with uow_factory() as uow:
            moved = uow.sagas.get(stale.id)
            assert moved is not None
            uow.sagas.save(moved)
            uow.commit()

        with uow_factory() as uow:
            loaded = uow.sagas.get_many([first.id, second.id])
            for n, saga in enumerate(loaded.values()):
                saga.history.append(HistoryEntry(T0 + timedelta(seconds=n), HistoryKind.STATUS, f"S{n}"))
            uow.sagas.save_many(list(loaded.values()))
            uow.commit()

        for saga in loaded.values():
            stored = self.load(uow_factory, saga.id)
            assert stored is not None and stored.history == saga.history and stored.version == saga.version == 1
        with uow_factory() as uow:
            fresh = uow.sagas.get(first.id)
            assert fresh is not None
            with pytest.raises(ConcurrencyConflict):
                uow.sagas.save_many([fresh, stale])  # `stale` was read before another save moved it
                uow.commit()

    def test_a_saga_read_without_its_history_appends_to_it(self, uow_factory: UnitOfWorkFactory) -> None:
        saga = make_saga()
        self.store(uow_factory, saga)
        stored_before = self.load(uow_factory, saga.id)
        assert stored_before is not None and len(stored_before.history) >= 2

        added = [HistoryEntry(T0 + timedelta(seconds=60 + n), HistoryKind.STATUS, f"S{n}") for n in range(3)]
        with uow_factory() as uow:
            lean = uow.sagas.get_many([saga.id], history=False)[saga.id]
            assert lean.history in ([], stored_before.history)  # a store may leave it out
            lean.history += added[:2]
            lean.status = SagaStatus.FAILED
            uow.sagas.save_many([lean])
            lean.history += added[2:]  # saved again in the same unit of work
            uow.sagas.save(lean)
            uow.commit()

        stored = self.load(uow_factory, saga.id)
        assert stored is not None
        assert stored.history == stored_before.history + added
        assert stored.status is SagaStatus.FAILED and stored.version == 2

    def test_a_saga_read_without_its_history_and_changed_meanwhile_is_a_conflict(
        self, uow_factory: UnitOfWorkFactory
    ) -> None:
        saga = make_saga()
        self.store(uow_factory, saga)

        with uow_factory() as uow:
            lean = uow.sagas.get_many([saga.id], history=False)[saga.id]
            lean.version -= 1  # as if another save had moved it since it was read
            with pytest.raises(ConcurrencyConflict):
                uow.sagas.save(lean)

        stored = self.load(uow_factory, saga.id)
        assert stored is not None and stored.history == saga.history

    def test_of_sagas_saved_together_one_stale_one_fails_them_all(self, uow_factory: UnitOfWorkFactory) -> None:
        first, second = make_saga(), make_saga()
        self.store(uow_factory, first, second)
        with uow_factory() as uow:
            read = uow.sagas.get_many([first.id, second.id])
        with uow_factory() as uow:
            moved = uow.sagas.get(second.id)
            assert moved is not None
            uow.sagas.save(moved)
            uow.commit()

        for saga in read.values():
            saga.status = SagaStatus.FAILED  # the same change to both
        with uow_factory() as uow, pytest.raises(ConcurrencyConflict):
            uow.sagas.save_many(list(read.values()))
            uow.commit()

        stored = self.load(uow_factory, first.id)
        assert stored is not None and stored.status is first.status and stored.version == 0

    def test_page_can_list_only_sagas_that_left_a_clean_up_unconfirmed(self, uow_factory: UnitOfWorkFactory) -> None:
        left = make_saga(status=SagaStatus.COMPLETED, due_at=None)  # make_saga's clean-up is unconfirmed
        settled = make_saga(status=SagaStatus.COMPLETED, due_at=None)
        settled.compensations = [replace(undo, status=UndoStatus.CONFIRMED) for undo in settled.compensations]
        self.store(uow_factory, left, settled)

        with uow_factory() as uow:
            only = uow.sagas.page(None, 10, None, unconfirmed_cleanup=True)
            completed = uow.sagas.page(SagaStatus.COMPLETED, 10, None, unconfirmed_cleanup=True)
            failed = uow.sagas.page(SagaStatus.FAILED, 10, None, unconfirmed_cleanup=True)
            everything = uow.sagas.page(None, 10, None)

        assert [saga.id for saga in only.sagas] == [left.id]
        assert [saga.id for saga in completed.sagas] == [left.id]
        assert failed.sagas == []
        assert {saga.id for saga in everything.sagas} == {left.id, settled.id}

    # ------------------------------------------------ which saga holds a resource

    def test_holders_names_the_saga_holding_each_order_and_payment(self, uow_factory: UnitOfWorkFactory) -> None:
        first, second, bare = holding("o-first", "p-first"), holding("o-second", "p-second"), holding(None, None)
        self.store(uow_factory, first, second, bare)

        with uow_factory() as uow:
            found = uow.sagas.holders(
                [
                    order_ref("o-first"),
                    payment_ref("p-first"),
                    payment_ref("p-second"),
                    order_ref("o-none"),
                    payment_ref("o-second"),
                ]
            )
            nothing = uow.sagas.holders([])

        # An order id asked as a payment is another resource: no saga holds that one.
        assert found == {
            order_ref("o-first"): first.id,
            payment_ref("p-first"): first.id,
            payment_ref("p-second"): second.id,
        }
        assert nothing == {}

    def test_holders_names_a_saga_holding_a_resource_only_in_its_compensations(
        self, uow_factory: UnitOfWorkFactory
    ) -> None:
        late = holding(None, None)  # its step failed by deadline; the order's id came later
        late.compensations = [Undo(Compensation.CANCEL_ORDER, "o-late", UndoStatus.CONFIRMED)]
        twice = holding("o-own", "p-own", status=SagaStatus.COMPLETED)
        twice.compensations = [
            Undo(Compensation.REVERT_PAYMENT, "p-second", UndoStatus.UNCONFIRMED, cleanup=True),
            Undo(Compensation.CANCEL_ORDER, "o-second", UndoStatus.CONFIRMED, cleanup=True),
        ]
        self.store(uow_factory, late, twice)

        with uow_factory() as uow:
            found = uow.sagas.holders(
                [order_ref("o-late"), payment_ref("p-second"), order_ref("o-second"), order_ref("p-second")]
            )

        assert found == {
            order_ref("o-late"): late.id,
            payment_ref("p-second"): twice.id,
            order_ref("o-second"): twice.id,
        }

    def test_a_resource_a_saga_comes_to_hold_is_named_once_saved(self, uow_factory: UnitOfWorkFactory) -> None:
        saga = holding(None, None, status=SagaStatus.STARTED)
        self.store(uow_factory, saga)
        long_id = "o-" + "x" * 5000  # a participant's id has no length bound

        with uow_factory() as uow:
            loaded = uow.sagas.get(saga.id)
            assert loaded is not None
            loaded.order_id = long_id
            loaded.compensations = [Undo(Compensation.REVERT_PAYMENT, "p-stray", cleanup=True)]
            uow.sagas.save(loaded)
            # The unit of work that wrote it sees it before its commit.
            assert uow.sagas.holders([order_ref(long_id), payment_ref("p-stray")]) == {
                order_ref(long_id): saga.id,
                payment_ref("p-stray"): saga.id,
            }
            uow.commit()
        with uow_factory() as uow:
            loaded = uow.sagas.get(saga.id)
            assert loaded is not None
            loaded.compensations.append(Undo(Compensation.CANCEL_ORDER, "o-stray", cleanup=True))
            uow.sagas.save(loaded)  # saved again: what it held before is not named twice
            uow.commit()

        with uow_factory() as uow:
            found = uow.sagas.holders([order_ref(long_id), payment_ref("p-stray"), order_ref("o-stray")])
        assert found == {order_ref(long_id): saga.id, payment_ref("p-stray"): saga.id, order_ref("o-stray"): saga.id}

    def test_a_resource_held_in_a_rolled_back_unit_of_work_is_not_held(self, uow_factory: UnitOfWorkFactory) -> None:
        saga = holding(None, None, status=SagaStatus.STARTED)
        self.store(uow_factory, saga)

        with uow_factory() as uow:
            loaded = uow.sagas.get(saga.id)
            assert loaded is not None
            loaded.payment_id = "p-gone"
            loaded.compensations = [Undo(Compensation.CANCEL_ORDER, "o-gone")]
            uow.sagas.save(loaded)
            uow.rollback()
            uow.sagas.add(holding("o-gone-too", None))
        with uow_factory() as uow:
            assert uow.sagas.holders([payment_ref("p-gone"), order_ref("o-gone"), order_ref("o-gone-too")]) == {}

    def test_of_two_sagas_holding_one_resource_either_is_named(self, uow_factory: UnitOfWorkFactory) -> None:
        # Written before resources held elsewhere were refused: both stay readable.
        first, second = holding("o-shared", None), holding(None, None)
        second.compensations = [Undo(Compensation.CANCEL_ORDER, "o-shared", UndoStatus.CONFIRMED, cleanup=True)]
        self.store(uow_factory, first, second)

        with uow_factory() as uow:
            found = uow.sagas.holders([order_ref("o-shared")])

        assert found in ({order_ref("o-shared"): first.id}, {order_ref("o-shared"): second.id})

    def test_a_duplicate_does_not_spoil_the_rest_of_the_transaction(self, uow_factory: UnitOfWorkFactory) -> None:
        saga = make_saga()
        command = make_command(saga.id)
        with uow_factory() as uow:
            uow.inbox.record("message-1", saga.id, T0)
            uow.commit()

        with uow_factory() as uow:
            assert uow.inbox.record("message-1", saga.id, T0) is False
            uow.sagas.add(saga)
            uow.outbox.add([command])
            assert uow.inbox.record("message-2", saga.id, T0) is True
            uow.commit()

        assert self.load(uow_factory, saga.id) == saga
        with uow_factory() as uow:
            assert [entry.command for entry in uow.outbox.claim_due(T0, 10)] == [command]
            assert uow.inbox.record("message-2", saga.id, T0) is False

    def test_a_message_consumed_twice_at_once_takes_effect_once(self, uow_factory: UnitOfWorkFactory) -> None:
        saga_id = new_id()
        start = threading.Barrier(2, timeout=RENDEZVOUS_TIMEOUT)
        outcomes: list[str] = []

        def consume() -> None:
            start.wait()
            try:
                with uow_factory() as uow:
                    if not uow.inbox.record("message-1", saga_id, T0):
                        outcomes.append("duplicate")
                        return
                    uow.outbox.add([make_command(saga_id)])
                    uow.commit()
                outcomes.append("applied")
            except ConcurrencyConflict:
                outcomes.append("conflict")  # a retry would find the duplicate

        run_in_threads(consume, consume)

        assert outcomes.count("applied") == 1
        with uow_factory() as uow:
            assert uow.outbox.pending_count() == 1

    # ------------------------------------------------------------ idempotency keys

    def test_an_idempotency_key_is_kept_with_its_saga_and_expires(self, uow_factory: UnitOfWorkFactory) -> None:
        saga = make_saga()
        record = IdempotencyRecord("key-ü-1", "d" * 64, saga.id, T0)
        day = timedelta(hours=24)
        with uow_factory() as uow:
            assert uow.idempotency_keys.get(record.key, T0 - day) is None
            uow.idempotency_keys.add(record, T0 - day)
            uow.sagas.add(saga)
            uow.commit()

        with uow_factory() as uow:
            assert uow.idempotency_keys.get(record.key, T0 - day) == record
            assert uow.idempotency_keys.get(record.key, T0) is None  # expired by then
            with pytest.raises(ConcurrencyConflict):
                uow.idempotency_keys.add(IdempotencyRecord(record.key, "e" * 64, new_id(), T0), T0 - day)

        later = IdempotencyRecord(record.key, "e" * 64, new_id(), T0 + day)
        with uow_factory() as uow:
            uow.idempotency_keys.add(later, T0 + timedelta(seconds=1))  # the old record expired: replaced
            uow.commit()
        with uow_factory() as uow:
            assert uow.idempotency_keys.get(record.key, T0) == later

    def test_idempotency_keys_claimed_together_read_back_together_until_they_expire(
        self, uow_factory: UnitOfWorkFactory
    ) -> None:
        day = timedelta(hours=24)
        records = [
            IdempotencyRecord(f"many-{index}", "d" * 64, new_id(), T0 + timedelta(seconds=index)) for index in range(3)
        ]
        with uow_factory() as uow:
            assert uow.idempotency_keys.get_many([record.key for record in records], T0 - day) == {}
            uow.idempotency_keys.add_many(records, T0 - day)
            uow.idempotency_keys.add_many([], T0 - day)
            uow.commit()

        with uow_factory() as uow:
            found = uow.idempotency_keys.get_many(["many-0", "many-1", "many-2", "unknown", "many-1"], T0 - day)
            assert found == {record.key: record for record in records}
            # Only those created after the cutoff are live.
            assert uow.idempotency_keys.get_many(["many-0", "many-1", "many-2"], T0 + timedelta(seconds=1)) == {
                "many-2": records[2]
            }
            assert uow.idempotency_keys.get_many([], T0 - day) == {}

        # A day later, two expired keys and a new one are claimed together: the old records are replaced.
        later = [IdempotencyRecord(key, "e" * 64, new_id(), T0 + 2 * day) for key in ("many-0", "many-1", "many-new")]
        with uow_factory() as uow:
            uow.idempotency_keys.add_many(later, T0 + day)
            uow.commit()
        with uow_factory() as uow:
            assert uow.idempotency_keys.get_many(["many-0", "many-1", "many-new"], T0) == {r.key: r for r in later}

    def test_idempotency_keys_claimed_together_with_one_live_key_are_a_conflict_and_none_is_kept(
        self, uow_factory: UnitOfWorkFactory
    ) -> None:
        day = timedelta(hours=24)
        live = IdempotencyRecord("live-key", "d" * 64, new_id(), T0)
        with uow_factory() as uow:
            uow.idempotency_keys.add(live, T0 - day)
            uow.commit()
        others = [IdempotencyRecord(f"fresh-{index}", "e" * 64, new_id(), T0) for index in range(2)]
        batch = [others[0], IdempotencyRecord("live-key", "e" * 64, new_id(), T0), others[1]]

        with pytest.raises(ConcurrencyConflict), uow_factory() as uow:
            uow.idempotency_keys.add_many(batch, T0 - day)
            uow.commit()

        with uow_factory() as uow:
            assert uow.idempotency_keys.get_many(["live-key", "fresh-0", "fresh-1"], T0 - day) == {"live-key": live}

    def test_an_idempotency_key_rolled_back_is_not_kept(self, uow_factory: UnitOfWorkFactory) -> None:
        record = IdempotencyRecord("key-2", "d" * 64, new_id(), T0)
        with uow_factory() as uow:
            uow.idempotency_keys.add(record, T0 - timedelta(hours=24))
        with uow_factory() as uow:
            assert uow.idempotency_keys.get("key-2", T0 - timedelta(hours=24)) is None

    def test_purge_deletes_only_idempotency_keys_created_before_the_cutoff(
        self, uow_factory: UnitOfWorkFactory
    ) -> None:
        with uow_factory() as uow:
            for index, created in enumerate([T0, T0 + timedelta(hours=1), T0 + timedelta(hours=30)]):
                uow.idempotency_keys.add(IdempotencyRecord(f"k{index}", "d" * 64, new_id(), created), T0)
            uow.commit()
        with uow_factory() as uow:
            assert uow.idempotency_keys.purge(T0 + timedelta(hours=2), 1) == 1
            assert uow.idempotency_keys.purge(T0 + timedelta(hours=2), 10) == 1
            uow.commit()
        with uow_factory() as uow:
            assert [uow.idempotency_keys.get(f"k{index}", T0 - timedelta(days=1)) is None for index in range(3)] == [
                True,
                True,
                False,
            ]


class OverlappingTransactionsContract:
    """For stores whose units of work run side by side rather than one after another."""

    def test_of_two_requests_with_one_idempotency_key_at_once_exactly_one_writes(
        self, uow_factory: UnitOfWorkFactory
    ) -> None:
        start = threading.Barrier(2, timeout=RENDEZVOUS_TIMEOUT)
        outcomes: list[str] = []

        def request() -> None:
            saga = make_saga()
            start.wait()
            try:
                with uow_factory() as uow:
                    if uow.idempotency_keys.get("same-key", T0 - timedelta(hours=24)) is not None:
                        outcomes.append("replayed")
                        return
                    uow.idempotency_keys.add(
                        IdempotencyRecord("same-key", "d" * 64, saga.id, T0), T0 - timedelta(hours=24)
                    )
                    uow.sagas.add(saga)
                    uow.commit()
                outcomes.append("written")
            except ConcurrencyConflict:
                outcomes.append("conflict")  # a retry reads the first one's record

        run_in_threads(request, request)

        assert outcomes.count("written") == 1
        with uow_factory() as uow:
            assert sum(uow.sagas.count_by_status().values()) == 1

    def test_of_two_units_of_work_taking_one_resource_at_once_the_second_finds_the_first(
        self, uow_factory: UnitOfWorkFactory
    ) -> None:
        # An event naming another saga's order, applied while that saga's own reply is:
        # both find the order unheld unless the second asks after the first committed.
        first, second = holding(None, None, status=SagaStatus.STARTED), holding(None, None, status=SagaStatus.STARTED)
        with uow_factory() as uow:
            uow.sagas.add(first)
            uow.sagas.add(second)
            uow.commit()
        first_asked = threading.Event()
        answers: dict[str, dict[ResourceRef, str]] = {}

        def take(saga: CreateOrderSaga, asked: threading.Event | None, wait: threading.Event | None) -> None:
            with uow_factory() as uow:
                if wait is not None:
                    assert wait.wait(RENDEZVOUS_TIMEOUT)
                answers[saga.id] = uow.sagas.holders([order_ref("o-contested")])
                if asked is not None:
                    asked.set()
                    time.sleep(0.3)  # the other asks meanwhile
                loaded = uow.sagas.get(saga.id)
                assert loaded is not None
                if not answers[saga.id]:
                    loaded.order_id = "o-contested"
                    uow.sagas.save(loaded)
                uow.commit()

        run_in_threads(lambda: take(first, first_asked, None), lambda: take(second, None, first_asked))

        assert answers == {first.id: {}, second.id: {order_ref("o-contested"): first.id}}
        with uow_factory() as uow:
            assert uow.sagas.holders([order_ref("o-contested")]) == {order_ref("o-contested"): first.id}

    def test_of_two_units_of_work_saving_one_saga_exactly_one_wins(self, uow_factory: UnitOfWorkFactory) -> None:
        saga = make_saga()
        with uow_factory() as uow:
            uow.sagas.add(saga)
            uow.commit()
        both_read = threading.Barrier(2, timeout=RENDEZVOUS_TIMEOUT)
        outcomes: dict[str, str] = {}

        def contend(name: str) -> Callable[[], None]:
            def run() -> None:
                try:
                    with uow_factory() as uow:
                        loaded = uow.sagas.get(saga.id)
                        assert loaded is not None and loaded.version == 0
                        both_read.wait()
                        loaded.error = name
                        uow.sagas.save(loaded)
                        uow.commit()
                    outcomes[name] = "won"
                except ConcurrencyConflict:
                    outcomes[name] = "conflict"

            return run

        run_in_threads(contend("first"), contend("second"))

        assert sorted(outcomes.values()) == ["conflict", "won"]
        [winner] = [name for name, outcome in outcomes.items() if outcome == "won"]
        with uow_factory() as uow:
            stored = uow.sagas.get(saga.id)
        assert stored is not None and stored.error == winner and stored.version == 1

    def test_concurrent_claims_take_disjoint_entries(self, uow_factory: UnitOfWorkFactory) -> None:
        commands = [make_command(new_id(), T0 + timedelta(seconds=i)) for i in range(6)]
        with uow_factory() as uow:
            uow.outbox.add(commands)
            uow.commit()
        rendezvous = threading.Barrier(2, timeout=RENDEZVOUS_TIMEOUT)
        claims: dict[str, list[int]] = {}

        def relay(name: str) -> Callable[[], None]:
            def run() -> None:
                with uow_factory() as uow:
                    rendezvous.wait()
                    claims[name] = [entry.id for entry in uow.outbox.claim_due(T0 + timedelta(minutes=1), 4)]
                    # Neither commits before both have claimed: the claims overlap in time.
                    rendezvous.wait()
                    uow.commit()

            return run

        run_in_threads(relay("a"), relay("b"))

        assert set(claims["a"]).isdisjoint(claims["b"])
        assert len(claims["a"]) + len(claims["b"]) == 6
        assert max(len(claims["a"]), len(claims["b"])) <= 4
        with uow_factory() as uow:
            assert uow.outbox.claim_due(T0 + timedelta(minutes=1), 10) == []
            assert uow.outbox.pending_count() == 0

    def test_a_claim_by_message_id_skips_entries_another_unit_of_work_holds(
        self, uow_factory: UnitOfWorkFactory
    ) -> None:
        held, free = make_command(new_id()), make_command(new_id())
        with uow_factory() as uow:
            uow.outbox.add([held, free])
            uow.commit()

        with uow_factory() as relay:
            [entry] = relay.outbox.claim_by_message_ids([held.message_id], T0)
            with uow_factory() as other_relay:
                claimed = other_relay.outbox.claim_by_message_ids([held.message_id, free.message_id], T0)
                other_relay.commit()

        assert entry.command == held
        assert [entry.command for entry in claimed] == [free]


def check_sagas_survive_the_upgrade_to_history_rows(database_url: str) -> None:
    """A database at revision 0003 (history as a JSON column of `sagas`) upgrades to head,
    and its sagas read back as they were, and go on growing their history."""
    from sqlalchemy import JSON, Column, MetaData, Table

    from saga.adapters.sql import SqlAlchemyUnitOfWork, create_engine_from_url
    from saga.adapters.sql.migrations import upgrade
    from saga.adapters.sql.saga_rows import saga_row, to_json
    from saga.adapters.sql.schema import sagas as current_sagas

    upgrade(database_url, "0003")
    first_schema = Table(
        "sagas",
        MetaData(),
        *(column._copy() for column in current_sagas.columns),
        Column("history", JSON(none_as_null=True), nullable=False),
    )
    long_history = make_saga()
    long_history.history = [
        HistoryEntry(T0 + timedelta(milliseconds=i), HistoryKind.IGNORED, "order.created", new_id(), f"#{i}")
        for i in range(1200)  # more than one batch of the migration
    ]
    no_history = make_saga(status=SagaStatus.STARTED)
    no_history.history = []
    finished = make_saga(status=SagaStatus.FAILED, due_at=None)
    paris = make_saga(created_at=T0.astimezone(timezone(timedelta(hours=2))))
    before = [long_history, no_history, finished, paris, *(make_saga() for _ in range(600))]
    engine = create_engine_from_url(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                first_schema.insert(),
                [{**saga_row(saga), "history": [to_json(entry) for entry in saga.history]} for saga in before],
            )

        upgrade(database_url)

        with SqlAlchemyUnitOfWork(engine) as uow:
            after = [uow.sagas.get(saga.id) for saga in before]
        assert after == before
        with SqlAlchemyUnitOfWork(engine) as uow:
            grown = uow.sagas.get(long_history.id)
            assert grown is not None
            grown.history.append(HistoryEntry(T0 + timedelta(hours=1), HistoryKind.STATUS, "FAILED", None, "x"))
            uow.sagas.save(grown)
            uow.commit()
        with SqlAlchemyUnitOfWork(engine) as uow:
            assert uow.sagas.get(long_history.id) == grown
    finally:
        engine.dispose()


def check_resources_held_before_the_upgrade_to_holders_are_found(database_url: str) -> None:
    """A database at revision 0004 upgrades to head, and the resources its sagas held
    before (their own, and those only their compensations name) have their holders."""
    from saga.adapters.sql import SqlAlchemyUnitOfWork, create_engine_from_url
    from saga.adapters.sql.migrations import upgrade
    from saga.adapters.sql.saga_rows import saga_row
    from saga.adapters.sql.schema import sagas

    upgrade(database_url, "0004")
    late = holding(None, None)
    late.compensations = [Undo(Compensation.CANCEL_ORDER, "o-late", UndoStatus.CONFIRMED)]
    twice = holding("o-own", "p-own", status=SagaStatus.COMPLETED)
    twice.compensations = [
        Undo(Compensation.REVERT_PAYMENT, "p-own", UndoStatus.CONFIRMED),
        Undo(Compensation.CANCEL_ORDER, "o-second", UndoStatus.UNCONFIRMED, cleanup=True),
    ]
    many = [holding(f"o-{n}", None) for n in range(1100)]  # more than one batch of the migration
    for n, saga in enumerate(many):
        saga.compensations = [Undo(Compensation.REVERT_PAYMENT, f"p-{n}", cleanup=True)]
    engine = create_engine_from_url(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(sagas.insert(), [saga_row(saga) for saga in [late, twice, *many]])

        upgrade(database_url)

        wanted = [
            order_ref("o-late"),
            order_ref("o-own"),
            payment_ref("p-own"),
            order_ref("o-second"),
            order_ref("p-own"),
        ]
        with SqlAlchemyUnitOfWork(engine) as uow:
            found = uow.sagas.holders(wanted)
            found_many = uow.sagas.holders([payment_ref(f"p-{n}") for n in range(1100)])
        assert found == {
            order_ref("o-late"): late.id,
            order_ref("o-own"): twice.id,
            payment_ref("p-own"): twice.id,
            order_ref("o-second"): twice.id,
        }
        assert found_many == {payment_ref(f"p-{n}"): saga.id for n, saga in enumerate(many)}
    finally:
        engine.dispose()
