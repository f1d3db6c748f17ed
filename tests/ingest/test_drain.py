"""The drain: replays are harmless, bad items do not block good ones, accounts stay apart."""

import json
import threading
from datetime import date

import pytest
from django.db import connection

from ingest import spool as spool_module
from ingest import wire
from ingest.credentials import TRACK, UNVERIFIED, digest
from ingest.models import DeadLetter
from segments.models import ActivitySummary, Event, EventDay
from tests.ingest.conftest import drain, events, people
from tests.schema import indexes_on, only_a_unique_index

pytestmark = pytest.mark.django_db


def spool_items(spool, account, *items):
    spool.append(str(account.pk), [json.dumps(item) for item in items])


def test_applying_the_same_items_twice_changes_nothing_the_second_time(cast, spool):
    items = [
        wire.cio_identify("42", {"plan": "pro", "_timestamp": 100}),
        wire.cio_event("42", {"name": "login", "timestamp": 1700000000}),
        wire.cio_event("42", {"name": "login", "timestamp": 1700000100}),
    ]
    spool_items(spool, cast.acme, *items)
    drain(spool)
    # A worker killed after the commit but before releasing the spool rows: same items again.
    spool_items(spool, cast.acme, *items)
    drain(spool)
    with cast.acme:
        assert Event.objects.count() == 2
        summary = ActivitySummary.objects.get()
    assert summary.count == 2
    assert summary.first_at.timestamp() == 1700000000
    assert summary.last_at.timestamp() == 1700000100
    assert people(cast.acme)["42"].attributes == {"plan": "pro"}


def test_a_batch_partly_stored_before_adds_only_its_new_events(cast, spool):
    # Events found stored at write time (a replay mixed with new items) are left out of the
    # rows, the summaries and the days; a key repeated within the batch counts once.
    first = [
        wire.cio_event("7", {"name": "login", "id": "a", "timestamp": 1700006399.25}),
        wire.cio_event("7", {"name": "login", "id": "b", "timestamp": 1700006400.5}),
    ]
    spool_items(spool, cast.acme, *first)
    drain(spool)
    later = [
        wire.cio_event("7", {"name": "login", "id": "c", "timestamp": 1700000000.123456}),
        wire.cio_event("7", {"name": "login", "id": "c", "timestamp": 1800000000}),  # repeated
        wire.cio_event("8", {"name": "login", "id": "d", "timestamp": 1700006400}),
    ]
    spool_items(spool, cast.acme, *first, *later)
    drain(spool)
    with cast.acme:
        assert sorted(Event.objects.values_list("dedupe_key", flat=True)) == [
            "a", "b", "c", "d",
        ]  # fmt: skip
        summaries = {
            s.person.customer_id: (s.count, s.first_at.timestamp(), s.last_at.timestamp())
            for s in ActivitySummary.objects.select_related("person")
        }
        days = dict(EventDay.objects.values_list("day", "count"))
        times = {e.dedupe_key: e.timestamp for e in Event.objects.all()}
    assert summaries == {
        "7": (3, 1700000000.123456, 1700006400.5),
        "8": (1, 1700006400, 1700006400),
    }
    # 1700006400 is midnight, UTC: "a" and "c" fall on the 14th, "b" and "d" on the 15th.
    assert days == {date(2023, 11, 14): 2, date(2023, 11, 15): 2}
    assert times["c"].timestamp() == 1700000000.123456


def test_a_failing_item_becomes_a_dead_letter_and_the_rest_are_applied(cast, spool):
    good = wire.cio_event("1", {"name": "ok"})
    bad = {**wire.cio_event("2", {"name": "bad"}), "timestamp": "not a time"}
    spool_items(spool, cast.acme, good, bad, wire.cio_event("3", {"name": "also ok"}))
    result = drain(spool)
    assert (result.applied, result.dead) == (2, 1)
    assert sorted(e.name for e in events(cast.acme)) == ["also ok", "ok"]
    letter = DeadLetter.objects.get()
    assert letter.account_id == cast.acme.pk
    assert letter.payload["name"] == "bad"
    assert spool.pending_count() == 0


def test_an_identify_refused_for_a_taken_email_creates_nobody(cast, spool):
    taken = wire.cio_identify("1", {"email": "ann@example.com"})
    refused = wire.cio_identify("2", {"email": "ann@example.com", "plan": "pro"})
    spool_items(spool, cast.acme, taken, refused, wire.cio_identify("3", {"plan": "free"}))
    result = drain(spool)
    assert (result.applied, result.dead) == (2, 1)
    assert sorted(people(cast.acme)) == ["1", "3"]
    assert "belongs to another person" in DeadLetter.objects.get().error


def test_an_email_freed_and_taken_in_one_batch_is_applied_item_by_item(cast, spool):
    # Person 1 gives up an email and a new person 3 takes it in the same batch: the new
    # people go in before the changed ones are updated, so the batch's transaction fails on
    # the unique email (an error of apply's own cursors, psycopg's) and is applied in halves.
    spool_items(spool, cast.acme, wire.cio_identify("1", {"email": "a@x.com"}))
    drain(spool)
    spool_items(
        spool, cast.acme,
        wire.cio_identify("1", {"email": "new@x.com"}), wire.cio_identify("3", {"email": "a@x.com"}),
    )  # fmt: skip
    result = drain(spool)
    assert (result.applied, result.dead) == (2, 0)
    assert {key: p.email for key, p in people(cast.acme).items()} == {
        "1": "new@x.com", "3": "a@x.com",
    }  # fmt: skip
    assert spool.pending_count() == 0


def test_items_for_a_deleted_account_are_dead_letters(cast, spool):
    spool.append("999999", [json.dumps(wire.cio_event("1", {"name": "x"}))])
    assert drain(spool).dead == 1
    assert DeadLetter.objects.get().error == "the account no longer exists"


def test_provisionally_accepted_items_are_checked_at_drain_time(cast, spool, acme_key):
    item = wire.cio_event("5", {"name": "during the outage"})
    good = {"kind": TRACK, "lookup": acme_key.site_id, "hash": digest(acme_key.api_key)}
    forged = {"kind": TRACK, "lookup": acme_key.site_id, "hash": digest("guess")}
    spool.append(UNVERIFIED, [json.dumps({**item, "credential": good})])
    spool.append(
        UNVERIFIED, [json.dumps({**wire.cio_event("6", {"name": "forged"}), "credential": forged})]
    )
    result = drain(spool)
    assert (result.applied, result.dead) == (1, 1)
    assert [e.name for e in events(cast.acme)] == ["during the outage"]
    assert DeadLetter.objects.get().error == "the credential it was sent with is not valid"


def test_each_account_gets_only_its_own_items(cast, spool):
    spool_items(spool, cast.acme, wire.cio_identify("same-id", {"owner": "acme"}))
    spool_items(spool, cast.globex, wire.cio_identify("same-id", {"owner": "globex"}))
    drain(spool)
    assert people(cast.acme)["same-id"].attributes == {"owner": "acme"}
    assert people(cast.globex)["same-id"].attributes == {"owner": "globex"}


def test_a_paused_account_waits_while_others_drain(cast, spool):
    spool_items(spool, cast.acme, wire.cio_identify("1", {}))
    spool_items(spool, cast.globex, wire.cio_identify("1", {}))
    spool.pause(str(cast.acme.pk))
    drain(spool)
    assert people(cast.acme) == {}
    assert "1" in people(cast.globex)
    spool.resume(str(cast.acme.pk))
    drain(spool)
    assert "1" in people(cast.acme)


def test_the_backlog_reports_waiting_items_and_the_apply_rate(cast, spool):
    spool_items(spool, cast.acme, *[wire.cio_event("1", {"name": "x"}) for _ in range(30)])
    spool_items(spool, cast.globex, wire.cio_event("1", {"name": "x"}))
    waiting = {row.account: row.waiting for row in spool.backlog()}
    assert waiting == {str(cast.acme.pk): 30, str(cast.globex.pk): 1}
    drain(spool)
    assert spool.backlog() == []
    spool_items(spool, cast.acme, wire.cio_event("1", {"name": "y"}))
    (row,) = spool.backlog(str(cast.acme.pk))
    assert row.applied_per_second > 0
    assert row.eta_seconds is not None


def test_concurrent_workers_each_get_an_account_of_their_own(cast, spool):
    spool_items(spool, cast.acme, *[wire.cio_event("1", {"name": "a"}) for _ in range(3)])
    spool_items(spool, cast.globex, wire.cio_event("1", {"name": "g"}))
    first = spool.claim(limit=100, lease_seconds=60)
    second = spool.claim(limit=100, lease_seconds=60)
    assert {item.account for item in first} == {str(cast.acme.pk)}
    assert {item.account for item in second} == {str(cast.globex.pk)}
    assert spool.claim(limit=100, lease_seconds=60) == []
    spool.retry_later(str(cast.acme.pk), delay_seconds=-1)  # the lease lapses
    assert len(spool.claim(limit=100, lease_seconds=60)) == 3


def test_a_worker_reads_its_accounts_next_batch_ahead_under_the_same_lease(cast, spool):
    spool_items(spool, cast.acme, *[wire.cio_event("1", {"name": str(n)}) for n in range(5)])
    first = spool.claim(limit=2, lease_seconds=60)
    ahead = spool.claim(limit=2, lease_seconds=60, after=first[-1])
    assert [item.id for item in ahead] == [first[-1].id + 1, first[-1].id + 2]
    assert spool.claim(limit=100, lease_seconds=60) == []  # no other worker gets acme
    spool.release([item.id for item in first])
    spool.end_lease(str(cast.acme.pk), first[-1].id)  # the first batch is done, not the next
    assert spool.leased_accounts() == [str(cast.acme.pk)]
    assert spool.claim(limit=100, lease_seconds=60) == []
    spool.end_lease(str(cast.acme.pk), ahead[-1].id)
    assert spool.leased_accounts() == []
    assert [item.id for item in spool.claim(limit=100, lease_seconds=60)] == [
        *(item.id for item in ahead),
        ahead[-1].id + 1,
    ]


def test_reading_ahead_leaves_an_account_with_older_items_to_the_next_claim(cast, spool):
    spool_items(spool, cast.acme, *[wire.cio_event("1", {"name": "a"}) for _ in range(2)])
    spool_items(spool, cast.globex, wire.cio_event("1", {"name": "g"}))
    spool_items(spool, cast.acme, wire.cio_event("1", {"name": "a"}))
    first = spool.claim(limit=2, lease_seconds=60)
    assert spool.claim(limit=2, lease_seconds=60, after=first[-1]) == []
    assert spool.leased_accounts() == [str(cast.acme.pk)]
    (globex,) = spool.claim(limit=2, lease_seconds=60)
    assert globex.account == str(cast.globex.pk)


def test_small_batches_back_to_back_apply_everything_in_order(cast, spool):
    spool_items(
        spool, cast.acme,
        wire.cio_identify("6", {"step": 0}),
        *[wire.cio_identify("5", {"step": n}) for n in range(7)],
        *[wire.cio_event("5", {"name": "tick", "id": f"tick-{n}"}) for n in range(6)],
        wire.cio_delete("6"),
    )  # fmt: skip
    spool_items(spool, cast.globex, wire.cio_identify("5", {"step": "globex"}))
    result = drain(spool, batch_size=2)
    assert (result.claimed, result.applied, result.dead) == (16, 16, 0)
    assert people(cast.acme).keys() == {"5"}
    assert people(cast.acme)["5"].attributes == {"step": 6}
    assert people(cast.globex)["5"].attributes == {"step": "globex"}
    assert len([e for e in events(cast.acme) if e.name == "tick"]) == 6
    assert spool.pending_count() == 0
    assert spool.leased_accounts() == []


def test_a_person_who_only_gets_events_keeps_every_attribute(cast, spool):
    spool_items(spool, cast.acme, wire.cio_identify("7", {"plan": "pro", "email": "s@e.example"}))
    drain(spool)
    # Read for the events alone, without attributes: nothing of theirs may be written back.
    spool_items(spool, cast.acme, *[wire.cio_event("7", {"name": "login"}) for _ in range(3)])
    drain(spool)
    person = people(cast.acme)["7"]
    assert person.attributes == {"plan": "pro", "email": "s@e.example"}
    assert [e.person_id for e in events(cast.acme)] == [person.pk] * 3


def test_one_batch_can_name_a_person_by_id_and_by_email(cast, spool):
    spool_items(spool, cast.acme, wire.cio_identify("8", {"email": "both@e.example", "a": 1}))
    drain(spool)
    spool_items(
        spool, cast.acme,
        wire.cio_event("8", {"name": "by id"}),
        wire.cio_identify("both@e.example", {"b": 2}),
        wire.cio_event("both@e.example", {"name": "by email"}),
        wire.cio_identify("8", {"c": 3}),
    )  # fmt: skip
    drain(spool)
    (person,) = people(cast.acme).values()
    assert person.attributes == {"email": "both@e.example", "a": 1, "b": 2, "c": 3}
    assert {e.name: e.person_id for e in events(cast.acme)} == {
        "by id": person.pk,
        "by email": person.pk,
    }


def test_people_new_in_a_batch_get_their_events_and_summaries(cast, spool):
    spool_items(
        spool, cast.acme,
        wire.cio_event("9", {"name": "signup", "timestamp": 1700000000}),
        wire.cio_identify("9", {"plan": "free"}),
        wire.cio_event("10", {"name": "signup", "timestamp": 1700000100}),
        wire.cio_event("9", {"name": "signup", "timestamp": 1700000200}),
    )  # fmt: skip
    drain(spool)
    everyone = people(cast.acme)
    assert everyone["9"].attributes == {"plan": "free"}
    with cast.acme:
        summaries = {
            (s.person.customer_id, s.count, s.first_at.timestamp(), s.last_at.timestamp())
            for s in ActivitySummary.objects.select_related("person")
        }
    assert summaries == {("9", 2, 1700000000, 1700000200), ("10", 1, 1700000100, 1700000100)}


def test_bad_items_in_a_large_batch_are_found_by_halving_it(cast, spool):
    items = [wire.cio_event(str(n), {"name": "ok", "id": f"ok-{n}"}) for n in range(64)]
    for position in (5, 40):
        items[position] = {**items[position], "timestamp": "not a time"}
    spool_items(spool, cast.acme, *items)
    transactions = []

    def count_locks(execute, sql, params, many, context):
        if "pg_advisory_xact_lock" in sql:
            transactions.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count_locks):
        result = drain(spool)
    assert (result.applied, result.dead) == (62, 2)
    assert len(events(cast.acme)) == 62
    assert DeadLetter.objects.count() == 2
    # One try for the batch, then halves: far fewer transactions than one per item.
    assert len(transactions) <= 2 * 2 * 6 + 1
    assert spool.pending_count() == 0


def test_deleting_a_person_takes_their_events_and_summaries_with_them(cast, spool):
    # Events and summaries have no foreign-key constraint; a trigger on people cascades.
    spool_items(
        spool, cast.acme,
        wire.cio_event("11", {"name": "login"}),
        wire.cio_event("12", {"name": "login"}),
    )  # fmt: skip
    drain(spool)
    spool_items(spool, cast.acme, wire.cio_delete("11"))
    drain(spool)
    with cast.acme:
        assert list(Event.objects.values_list("person__customer_id", flat=True)) == ["12"]
        assert list(ActivitySummary.objects.values_list("person__customer_id", flat=True)) == ["12"]


def test_events_carry_one_index_on_their_dedupe_key_which_finds_replays(cast):
    # Django gives a unique CharField a second index for LIKE (varchar_pattern_ops); nothing
    # searches dedupe keys so, and every event inserted paid for it (segments 0019).
    from ingest.apply import ANY_OF_JSON

    with cast.acme, connection.cursor() as cursor:
        indexes = indexes_on("segments_event", "dedupe_key")
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(  # the drain's lookup of a batch's keys (new_events)
            f"EXPLAIN SELECT dedupe_key FROM segments_event WHERE dedupe_key = {ANY_OF_JSON}",
            ['["k-1"]'],
        )
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert only_a_unique_index(indexes, "event_dedupe_key"), indexes
    assert "event_dedupe_key" in plan, plan


def test_a_replayed_attribute_change_writes_nothing(cast, spool):
    item = wire.cio_identify("13", {"plan": "pro", "_timestamp": 100})
    spool_items(spool, cast.acme, item)
    drain(spool)
    written = people(cast.acme)["13"].updated_at
    spool_items(spool, cast.acme, item, wire.cio_identify("13", {"plan": "pro", "_timestamp": 50}))
    drain(spool)
    assert people(cast.acme)["13"].updated_at == written
    # The same value at a later time is a change: the later time must win over older values.
    spool_items(spool, cast.acme, wire.cio_identify("13", {"plan": "pro", "_timestamp": 200}))
    drain(spool)
    person = people(cast.acme)["13"]
    assert person.updated_at > written
    # Created whole at 100 (one time for all its attributes), then plan's own time.
    assert person.attribute_times == {"": 100, "plan": 200}


def test_summary_updates_stay_on_their_page_without_touching_indexes(cast, spool):
    # The drain upserts tens of thousands of summaries a batch; only count and times change,
    # so none of them needs new index entries: HOT updates (segments 0014), given room on the
    # page (fillfactor 80). 200 people act once, then ten of them twice more.
    def writes() -> tuple[int, int, int]:
        # The test's transaction is still open: its own counts (the drain ran inside it).
        with cast.acme, connection.cursor() as cursor:
            cursor.execute(
                "SELECT n_tup_ins, n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables"
                " WHERE relname = 'segments_activitysummary' AND schemaname = current_schema()"
            )
            return cursor.fetchone()

    before = writes()
    for round_, people_acting in enumerate((200, 10, 10)):
        spool_items(spool, cast.acme, *[
            wire.cio_event(str(n), {"name": "viewed", "id": f"{round_}-{n}",
                                    "timestamp": 1700000000 + round_})
            for n in range(people_acting)
        ])  # fmt: skip
        drain(spool)
    after = writes()
    assert tuple(a - b for a, b in zip(after, before, strict=True)) == (200, 20, 20)


def test_writers_queue_for_the_spool_and_lose_nothing(cast, spool):
    # Web workers append while drain workers claim and release: every writer waits its turn
    # on the spool's writer lock (a flock beside it), none fails, nothing is lost or doubled.
    account = str(cast.acme.pk)
    appended, errors = [], []

    def web_worker(number: int) -> None:
        try:
            for request in range(40):
                payloads = [json.dumps({"n": f"{number}-{request}-{i}"}) for i in range(10)]
                spool.append(account, payloads)
                appended.extend(payloads)
        except Exception as error:  # reported below
            errors.append(error)

    released = []

    def drain_worker() -> None:
        while len(released) < 8 * 40 * 10:
            batch = spool.claim(limit=150, lease_seconds=60)
            if batch:
                spool.release([item.id for item in batch])
                spool.end_lease(account)
                released.extend(item.payload for item in batch)

    threads = [threading.Thread(target=web_worker, args=(n,)) for n in range(8)]
    drainer = threading.Thread(target=drain_worker, daemon=True)
    for thread in [*threads, drainer]:
        thread.start()
    for thread in threads:
        thread.join()
    drainer.join(timeout=60)
    assert errors == []
    assert sorted(released) == sorted(appended)
    assert len(set(released)) == 8 * 40 * 10
    assert spool.pending_count() == 0


def test_the_spool_log_is_checkpointed_without_a_drain(tmp_path, monkeypatch):
    # Commits never checkpoint inside the writer lock; the API's commits do it after the lock
    # now and then, so the write-ahead log stays bounded even when no drain worker runs.
    payloads = [json.dumps({"pad": "x" * 1000, "i": i}) for i in range(10)]

    def log_size_after_appends(name: str) -> int:
        spool = spool_module.Spool(tmp_path / name / "spool.sqlite3")
        for _ in range(1000):
            spool.append("account", payloads)
        assert spool.pending_count() == 1000 * len(payloads)
        return spool.path.with_name(spool.path.name + "-wal").stat().st_size

    checkpointed = log_size_after_appends("checkpointed")
    monkeypatch.setattr(spool_module, "CHECKPOINT_EVERY", 10**9)
    never = log_size_after_appends("never")
    assert checkpointed < never / 3


@pytest.mark.parametrize(
    "bad",
    [
        # (The API refuses such requests; items spooled before it did, or by other paths.)
        {**wire.cio_identify("2", {"plan": "pro"}), "person": {"id": "nul\x00id"}},
        wire.cio_event("2", {"name": "nul\x00name"}),
        wire.cio_identify("2", {"plan": "nul\x00value"}),
    ],
    ids=["customer id", "event name", "attribute value"],
)
def test_text_postgresql_cannot_store_makes_a_dead_letter_not_a_stuck_spool(cast, spool, bad):
    good = wire.cio_event("1", {"name": "ok"})
    spool_items(spool, cast.acme, good, bad, wire.cio_event("3", {"name": "also ok"}))
    result = drain(spool)
    assert (result.applied, result.dead) == (2, 1)
    assert sorted(e.name for e in events(cast.acme)) == ["also ok", "ok"]
    assert spool.pending_count() == 0
    letter = DeadLetter.objects.get()  # kept for staff, the NUL shown as U+FFFD
    assert "\ufffd" in json.dumps(letter.payload, ensure_ascii=False)
    assert "shown as U+FFFD" in letter.error
