"""The drain's overlapped batches (ingest.drain.Overlap): each batch of an account planned
while the one before is written on another connection gives what applying them one after
another gives, a batch whose write fails is applied again on its own (its bad items dead
letters) before the next one, and each person's changes land in the spool's order.

The overlap needs committed rows (the writer's connection cannot see a test's transaction), so
these tests drain on threads of their own, as a drain worker does, and remove what they made
afterwards. The reference is the same items drained inside a transaction, where the drain
applies its batches one after another.
"""

import json
import threading
import time
from collections.abc import Iterator

import pytest
from django.db import connection, transaction

from accounts.models import Account
from ingest import apply as apply_module
from ingest import drain as drain_module
from ingest import wire
from ingest.apply import PredecessorFailed, apply_items
from ingest.models import DeadLetter
from segments.models import ActivitySummary, Event, EventDay, Person
from tests.ingest.conftest import drain
from tests.threads import committed_accounts, in_thread, wait_for_a_lock_waiter


@pytest.fixture
def accounts(django_db_setup, django_db_blocker, spool) -> Iterator[dict]:
    """acme (overlapped) and globex (the reference), emptied of what the drain made after."""

    def clear(found: dict) -> None:
        for account in found.values():
            with account:
                Person.objects.all().delete()
                Event.objects.all().delete()
                ActivitySummary.objects.all().delete()
                EventDay.objects.all().delete()
        DeadLetter.objects.filter(account_id__in=[a.pk for a in found.values()]).delete()

    with committed_accounts(django_db_blocker, clear) as found:
        yield found


@pytest.fixture
def overlapped(monkeypatch) -> list[bool]:
    """Records, for every batch the overlap planned, whether another was in flight."""
    carried: list[bool] = []
    prepare = drain_module.prepare

    def spy(items, received_at, previous=None):
        carried.append(previous is not None)
        return prepare(items, received_at, previous)

    monkeypatch.setattr(drain_module, "prepare", spy)
    return carried


def drain_items(spool, account: Account, items: list[dict], one_by_one: bool) -> dict:
    """Spool the items for the account and drain them in batches of 2; what came of it."""

    def run() -> dict:
        spool.append(str(account.pk), [json.dumps(item) for item in items])
        if one_by_one:
            with transaction.atomic():
                result = drain(spool, batch_size=2)
        else:
            result = drain(spool, batch_size=2)
        connection.set_schema_to_public()
        letters = list(DeadLetter.objects.filter(account_id=account.pk))
        with account:
            return {
                "counts": (result.claimed, result.applied, result.dead),
                "dead": sorted(json.dumps(letter.payload, sort_keys=True) for letter in letters),
                "people": sorted(
                    (p.customer_id or "", p.email or "", sorted(p.attributes.items()))
                    for p in Person.objects.all()
                ),
                "events": sorted(
                    (e.person.customer_id if e.person else e.anonymous_id, e.name, e.dedupe_key)
                    for e in Event.objects.select_related("person")
                ),
                "summaries": sorted(
                    (s.person.customer_id, s.name, s.count)
                    for s in ActivitySummary.objects.select_related("person")
                ),
                "pending": spool.pending_count(),
                "leased": spool.leased_accounts(),
            }

    return in_thread(run)


def compare(spool, accounts: dict, items: list[dict]) -> dict:
    result = drain_items(spool, accounts["acme"], items, one_by_one=False)
    reference = drain_items(spool, accounts["globex"], items, one_by_one=True)
    assert result == reference
    assert (result["pending"], result["leased"]) == (0, [])
    return result


def identify(person: str, at: float = 100, **values) -> dict:
    return wire.cio_identify(person, {**values, "_timestamp": at})


def event(person: str, name: str, key: str) -> dict:
    return wire.cio_event(person, {"name": name, "id": key, "timestamp": 1_700_000_000})


def failed_writes(caplog) -> int:
    return sum("failed to write" in record.getMessage() for record in caplog.records)


def test_later_batches_change_people_that_earlier_batches_created(
    spool, accounts, overlapped, caplog
):
    items = [
        identify("1", plan="a", email="a@x.com"), identify("2", plan="b"),
        event("1", "seen", "e1"), identify("1", plan="c"),  # while the first batch is written
        identify("3", email="a@x.com"), event("2", "seen", "e2"),  # a@x.com is 1's: refused
        identify("1", email="new@x.com"), event("1", "other", "e4"),  # a@x.com freed...
        identify("3", email="a@x.com"), wire.cio_delete("2"),  # ...and taken; 2 deleted
        event("2", "seen", "e3"), event("1", "seen", "e1"),  # 2 again; a replay adds nothing
        identify("3", seats=4), identify("2", plan="d"),
    ]  # fmt: skip
    result = compare(spool, accounts, items)
    assert result["counts"] == (14, 13, 1)
    assert result["people"] == [
        ("1", "new@x.com", [("email", "new@x.com"), ("plan", "c")]),
        ("2", "", [("plan", "d")]),
        ("3", "a@x.com", [("email", "a@x.com"), ("seats", 4)]),
    ]
    assert result["summaries"] == [("1", "other", 1), ("1", "seen", 1), ("2", "seen", 1)]
    # Every batch after the first was planned while the one before was written, and none
    # had to be applied again on its own.
    assert overlapped == [False] + [True] * 6
    assert failed_writes(caplog) == 0


def test_a_batch_whose_write_fails_is_applied_again_on_its_own_in_order(
    spool, accounts, overlapped, caplog, monkeypatch
):
    # The bad event fails its batch's write (PostgreSQL's JSON cannot hold a NUL, and only
    # the write finds out); the batch after it was planned on top of it, so it is planned
    # again after the bad batch was applied in halves. One time for every change: only the
    # spool's order decides.
    bad = {**event("5", "bad", "bad-1"), "data": {"note": "nul \x00 here"}}
    written: list[tuple[int, str]] = []
    write = drain_module._write

    def recorded_write(planned):
        failure = write(planned)
        # By the batch's first item: the bad batch's COPY fails while the one before it is
        # still being written, so the writes end in no set order.
        written.append((planned.items[0].id, type(failure).__name__))
        return failure

    monkeypatch.setattr(drain_module, "_write", recorded_write)
    items = [
        identify("5", step=1), identify("5", step=2),
        bad, identify("5", step=3),
        identify("5", step=4), event("5", "ok", "ok-1"),
        identify("5", step=5), identify("6", step=1),
    ]  # fmt: skip
    result = compare(spool, accounts, items)
    assert result["counts"] == (8, 7, 1)
    assert [json.loads(letter)["name"] for letter in result["dead"]] == ["bad"]
    assert result["people"] == [("5", "", [("step", 5)]), ("6", "", [("step", 1)])]
    assert result["events"] == [("5", "ok", "ok-1")]
    assert failed_writes(caplog) == 1
    # The batch after the bad one was planned on top of it and handed over at once: it
    # rolled back when the bad one failed, and was then applied on its own.
    assert overlapped[:3] == [False, True, True]
    assert [result for _, result in sorted(written)][:3] == [
        "NoneType", "UntranslatableCharacter", PredecessorFailed.__name__,
    ]  # fmt: skip


def test_a_batch_writes_its_events_beside_the_one_before_and_the_rest_after_its_commit(
    spool, accounts, monkeypatch
):
    # The first batch's write is slowed down: the second inserts its events meanwhile, on
    # the other writer connection, and changes its people only after the first committed.
    steps: list[tuple[str, str]] = []
    copy_events, write_people = apply_module.copy_events, apply_module.write_people
    write = drain_module._write

    def first_key(batch) -> str:
        return min(batch.event_keys)

    def recorded_copy(cursor, batch):
        copy_events(cursor, batch)
        steps.append(("events", first_key(batch)))

    def slow_people(cursor, batch, now):
        steps.append(("people", first_key(batch)))
        if first_key(batch) == "k-1":
            time.sleep(0.5)
        write_people(cursor, batch, now)

    def recorded_write(planned):
        failure = write(planned)
        steps.append(("committed" if failure is None else "failed", first_key(planned.batch)))
        return failure

    monkeypatch.setattr(apply_module, "copy_events", recorded_copy)
    monkeypatch.setattr(apply_module, "write_people", slow_people)
    monkeypatch.setattr(drain_module, "_write", recorded_write)
    items = [
        event("1", "a", "k-1"), identify("1", step=1),
        event("1", "b", "k-2"), identify("1", step=2),
        event("1", "c", "k-3"), identify("1", step=3),
    ]  # fmt: skip
    result = compare(spool, accounts, items)  # acme first: index() finds its steps

    def before(first: tuple[str, str], then: tuple[str, str]) -> bool:
        return steps.index(first) < steps.index(then)

    assert before(("events", "k-2"), ("committed", "k-1"))  # while the first is written
    assert before(("committed", "k-1"), ("people", "k-2"))
    assert before(("committed", "k-2"), ("people", "k-3"))
    assert steps.count(("failed", "k-1")) == steps.count(("failed", "k-2")) == 0
    assert result["people"] == [("1", "", [("step", 3)])]
    assert result["summaries"] == [("1", "a", 1), ("1", "b", 1), ("1", "c", 1)]


def test_an_event_sent_again_while_its_first_batch_is_written_is_stored_once(
    spool, accounts, overlapped, caplog
):
    # Batches of two: k-1 comes again in the batch planned while the first (which stores it)
    # is being written, uncommitted, and k-2 two batches later. Each is stored and counted
    # once, and no write fails on the way.
    items = [
        event("1", "a", "k-1"), event("1", "b", "k-2"),
        event("1", "a", "k-1"), event("2", "c", "k-3"),
        event("1", "b", "k-2"), identify("2", step=1),
    ]  # fmt: skip
    result = compare(spool, accounts, items)
    assert result["counts"] == (6, 6, 0)
    assert result["events"] == [("1", "a", "k-1"), ("1", "b", "k-2"), ("2", "c", "k-3")]
    assert result["summaries"] == [("1", "a", 1), ("1", "b", 1), ("2", "c", 1)]
    assert failed_writes(caplog) == 0
    assert overlapped == [False, True, True]


def test_another_writer_gets_its_turn_between_overlapped_batches(spool, accounts, monkeypatch):
    # While the drain holds the writer lock across batches, a change that takes the lock (an
    # import's chunk, the dashboard's) waits; the drain lets go after the batch in flight,
    # and the batches after read what that change wrote instead of overwriting it.
    acme = accounts["acme"]
    order: list[str] = []
    prepare, write = drain_module.prepare, drain_module._write

    def vip() -> None:
        item = {"op": "identify", "person": {"id": "1"}, "attributes": {"vip": True},
                "update_only": True, "at": time.time() + 60, "anonymous_id": None}  # fmt: skip
        # Recorded before the commit lets go of the writer lock: the drain's next batch
        # takes that lock first, so its write cannot be recorded before this.
        with acme, transaction.atomic():
            assert apply_items([item]).applied == 1
            order.append("other writer")

    def prepare_with_a_writer_waiting(items, received_at, previous=None):
        planned = prepare(items, received_at, previous)
        if previous is not None and "other writer" not in order and not waiting:
            waiting.append(threading.Thread(target=in_thread, args=(vip,)))
            waiting[0].start()
            in_thread(wait_for_a_lock_waiter)
        return planned

    def recorded_write(planned):
        order.append("batch")
        return write(planned)

    waiting: list[threading.Thread] = []
    monkeypatch.setattr(drain_module, "prepare", prepare_with_a_writer_waiting)
    monkeypatch.setattr(drain_module, "_write", recorded_write)
    items = [identify(str(n % 2), step=n) for n in range(8)]
    result = drain_items(spool, acme, items, one_by_one=False)
    waiting[0].join()
    assert order == ["batch", "batch", "other writer", "batch", "batch"]
    assert result["people"] == [("0", "", [("step", 6)]), ("1", "", [("step", 7), ("vip", True)])]


def test_a_batch_with_messaging_items_is_applied_on_its_own(spool, accounts, monkeypatch):
    # An unsubscribe changes the person in SQL, which carry_over cannot see: that batch is
    # not written by the overlap, and the one after it is read after its commit.
    written: list[list[str]] = []
    write = drain_module._write

    def recorded_write(planned):
        written.append([item["op"] for item in planned.payloads])
        return write(planned)

    monkeypatch.setattr(drain_module, "_write", recorded_write)
    metric = wire.cio_metric({"delivery_id": 999, "metric": "opened"})  # an unknown delivery
    items = [identify("1", step=1), identify("2", step=1), metric, identify("1", step=2)]
    items += [identify("1", step=3), identify("2", step=2)]
    result = drain_items(spool, accounts["acme"], items, one_by_one=False)
    assert written == [["identify", "identify"], ["identify", "identify"]]
    assert result["counts"] == (6, 6, 0)
    assert result["people"] == [("1", "", [("step", 3)]), ("2", "", [("step", 2)])]


# A worker's writer connection outlives a pass (drain_forever hands the same Overlap to each
# drain_batches call): a trickle of small bursts must not open a connection per burst.


def drain_pass(spool, overlap: drain_module.Overlap, account: Account, items: list[dict]) -> int:
    """Spool the items and drain them in one pass with `overlap`; its writer's backend pid."""
    spool.append(str(account.pk), [json.dumps(item) for item in items])
    for _ in drain_module.drain_batches(spool, batch_size=2, lease_seconds=60, overlap=overlap):
        pass
    assert spool.pending_count() == 0
    return overlap.writer.run(backend_pid)


def backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def advisory_locks_held() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted")
        return cursor.fetchone()[0]


def customer_ids(account: Account) -> list[str]:
    with account:
        return sorted(Person.objects.values_list("customer_id", flat=True))


def test_the_next_pass_of_the_account_writes_on_the_same_connection(spool, accounts):
    acme = accounts["acme"]

    def run() -> tuple[int, int, int]:
        overlap = drain_module.Overlap()
        try:
            first = drain_pass(spool, overlap, acme, [identify("1"), identify("2"), identify("3")])
            # Between passes the writer holds no lock: imports and the dashboard go ahead.
            locks = advisory_locks_held()
            second = drain_pass(spool, overlap, acme, [identify("4"), identify("5"), identify("6")])
            return first, second, locks
        finally:
            overlap.close()

    first, second, locks = in_thread(run)
    assert first == second
    assert locks == 0
    assert customer_ids(acme) == ["1", "2", "3", "4", "5", "6"]


def test_a_kept_writer_never_writes_for_another_account(spool, accounts):
    acme, globex = accounts["acme"], accounts["globex"]

    def run() -> tuple[int, int]:
        overlap = drain_module.Overlap()
        try:
            first = drain_pass(spool, overlap, acme, [identify("a1"), identify("a2")] * 2)
            second = drain_pass(spool, overlap, globex, [identify("g1"), identify("g2")] * 2)
            return first, second
        finally:
            overlap.close()

    first, second = in_thread(run)
    assert first != second  # a writer of globex's own
    assert customer_ids(acme) == ["a1", "a2"]
    assert customer_ids(globex) == ["g1", "g2"]


def test_a_kept_writer_whose_connection_was_closed_is_replaced_and_nothing_is_lost(
    spool, accounts, caplog
):
    # PostgreSQL closed the idle writer's connection (a restart, an idle timeout): the next
    # pass applies everything all the same, exactly once, and gets a new writer.
    acme = accounts["acme"]

    def run() -> tuple[int, int]:
        overlap = drain_module.Overlap()
        try:
            first = drain_pass(spool, overlap, acme, [identify("1"), identify("2")])
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_terminate_backend(%s)", [first])
            items = [identify(str(n), step=n) for n in range(3, 9)]
            items += [event("3", "bought", "k-1"), event("3", "bought", "k-1")]
            second = drain_pass(spool, overlap, acme, items)
            return first, second
        finally:
            overlap.close()

    first, second = in_thread(run)
    assert first != second
    assert customer_ids(acme) == [str(n) for n in range(1, 9)]
    with acme:
        assert list(Event.objects.values_list("dedupe_key", flat=True)) == ["k-1"]
    assert not DeadLetter.objects.filter(account_id=acme.pk).exists()


def test_an_idle_writer_is_closed(spool, accounts):
    acme = accounts["acme"]

    def run() -> tuple[bool, bool]:
        overlap = drain_module.Overlap()
        try:
            drain_pass(spool, overlap, acme, [identify("1"), identify("2")])
            overlap.close_if_idle(60)
            kept = overlap.writer is not None
            overlap.close_if_idle(0)
            return kept, overlap.writer is None
        finally:
            overlap.close()

    assert in_thread(run) == (True, True)


def test_a_writer_is_not_kept_for_an_account_moved_since(accounts):
    acme = accounts["acme"]
    moved = Account.objects.get(pk=acme.pk)
    moved.server = "elsewhere"
    assert drain_module.same_place(acme, Account.objects.get(pk=acme.pk))
    assert not drain_module.same_place(acme, moved)
    assert not drain_module.same_place(acme, accounts["globex"])
    assert not drain_module.same_place(None, acme)
