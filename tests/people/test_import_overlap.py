"""CSV imports that plan each chunk while the chunk before is written on another connection
(segments.imports._apply_overlapped): the same people, rejections and counts as applying the
chunks one after another, and the drain gets its turn during a long import.

The overlap needs committed rows (the writer's connection cannot see a test's transaction), so
these tests run the import on threads of their own, as the import worker does, and remove
what they made afterwards. The reference is the same file imported one chunk after another,
which run_import does inside a transaction.
"""

import threading
import time
from collections.abc import Iterator

import pytest
from django.db import transaction
from django.utils import timezone

from accounts.models import Account
from ingest.apply import apply_items
from segments import imports
from segments.models import Import, Person
from tests.threads import committed_accounts, in_thread, wait_for_a_lock_waiter


@pytest.fixture
def accounts(django_db_setup, django_db_blocker, settings, tmp_path) -> Iterator[dict]:
    """acme (overlapped) and globex (the reference), emptied of people and imports after."""
    settings.IMPORTS_DIR = tmp_path / "imports"

    def clear(found: dict) -> None:
        for account in found.values():
            with account:
                Person.objects.all().delete()
                Import.objects.all().delete()

    with committed_accounts(django_db_blocker, clear) as found:
        yield found


def run_csv(account: Account, text: str, identifier: str, kind: str, one_by_one: bool) -> dict:
    """Import `text` into the account; what it made of it, to compare."""

    def run() -> dict:
        with account:
            folder = imports.account_folder()
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "people.csv").write_text(text)
            header = text.split("\n", 1)[0].split(",")
            job = Import.objects.create(
                filename="people.csv", stored_as="people.csv", size_bytes=len(text),
                columns=header, identifier_column=identifier, identifier_kind=kind,
                mapping={column: column for column in header if column != "id"},
            )  # fmt: skip
            if one_by_one:
                with transaction.atomic():
                    imports.run_import(job)
            else:
                imports.run_import(job)
            job.refresh_from_db()
            return {
                "counts": (job.state, job.rows_imported, job.rows_rejected, job.rows_done),
                "rejections": sorted(job.rejections.values_list("line", "reason")),
                "people": sorted(
                    (p.customer_id or "", p.email or "", sorted(p.attributes.items()))
                    for p in Person.objects.all()
                ),
            }

    return in_thread(run)


@pytest.fixture
def overlapped(monkeypatch) -> list[bool]:
    """Chunks of 2 rows; records, for every chunk planned, whether another was in flight."""
    monkeypatch.setattr(imports, "CHUNK_ROWS", 2)
    carried: list[bool] = []
    prepare = imports.prepare

    def spy(items, received_at, previous=None):
        carried.append(previous is not None)
        return prepare(items, received_at, previous)

    monkeypatch.setattr(imports, "prepare", spy)
    return carried


def compare(accounts: dict, text: str, identifier: str = "email", kind: str = "email") -> dict:
    result = run_csv(accounts["acme"], text, identifier, kind, one_by_one=False)
    reference = run_csv(accounts["globex"], text, identifier, kind, one_by_one=True)
    assert result == reference
    return result


def test_later_chunks_update_people_that_earlier_chunks_created(accounts, overlapped):
    text = (
        "email,plan,seats\n"
        "a@x.com,p1,1\nb@x.com,p1,1\n"  # chunk 1
        "a@x.com,p2,\nc@x.com,p1,3\n"  # chunk 2: a again, while chunk 1 is written
        "A@X.com,,7\nd@x.com,p1,\n"  # chunk 3: a again, b not (read from the database)
        "b@x.com,p3,\na@x.com,p4,\n"  # chunk 4
    )
    result = compare(accounts, text)
    assert result["counts"] == ("done", 8, 0, 8)
    assert [(email, dict(attributes)) for _, email, attributes in result["people"]] == [
        ("a@x.com", {"email": "a@x.com", "plan": "p4", "seats": 7}),
        ("b@x.com", {"email": "b@x.com", "plan": "p3", "seats": 1}),
        ("c@x.com", {"email": "c@x.com", "plan": "p1", "seats": 3}),
        ("d@x.com", {"email": "d@x.com", "plan": "p1"}),
    ]
    assert True in overlapped  # chunks were planned while the one before was written


def test_an_email_taken_in_an_earlier_chunk_is_refused_and_a_freed_one_is_given(
    accounts, overlapped
):
    text = (
        "id,email,plan\n"
        "1,e@x.com,p1\n2,f@x.com,p1\n"  # chunk 1
        "3,e@x.com,p2\n1,g@x.com,p3\n"  # chunk 2: e is 1's; 1 moves to g
        "4,e@x.com,p4\n5,G@x.com,p5\n"  # chunk 3: e is free again, g is 1's
        "2,f@x.com,p6\n6,h@x.com,p6\n"  # chunk 4
    )
    result = compare(accounts, text, identifier="id", kind="id")
    assert result["rejections"] == [
        (4, "email e@x.com belongs to another person"),
        (7, "email g@x.com belongs to another person"),
    ]
    emails = {customer_id: email for customer_id, email, _ in result["people"]}
    assert (emails["1"], emails["2"], emails["4"], emails["6"]) == (
        "g@x.com", "f@x.com", "e@x.com", "h@x.com",
    )  # fmt: skip
    assert sorted(emails) == ["1", "2", "4", "6"]  # the refused rows created nobody
    assert True in overlapped


def test_rejected_rows_at_chunk_boundaries_keep_their_lines(accounts, overlapped):
    text = (
        "email,plan\n"
        "a@x.com,p1\nnot an email,p1\n"  # line 3 rejected by the reader
        "b@x.com,p1\n,p2\n"  # line 5: no identifier, the chunk's last row
        ",p3\na@x.com,p4\n"  # line 6: the next chunk's first row
        "c@x.com,p1,extra\nb@x.com,p5\n"  # line 8: too many fields
        "c@x.com,p6\n"
    )
    result = compare(accounts, text)
    assert [line for line, _ in result["rejections"]] == [3, 5, 6, 8]
    assert result["counts"] == ("done", 5, 4, 9)
    assert True in overlapped


def test_a_chunk_whose_write_fails_is_applied_again_and_counted_once(
    accounts, overlapped, monkeypatch
):
    # Something that does not take the writer lock creates c@x.com while the chunk that
    # creates it is being written: that write fails on the unique email, nothing of it is
    # kept, and the chunk is applied again from the database (c updated, not created).
    acme = accounts["acme"]
    write_batch, raced = imports.write_batch, []

    def create_c_meanwhile(batch, outcome, items, received_at):
        if not raced and any(item["person"] == {"email": "c@x.com"} for item in items):
            raced.append(True)

            def create() -> None:
                with acme:
                    Person.objects.create(email="c@x.com", attributes={"vip": True},
                                          attribute_times={"vip": 1.0}, created_at=timezone.now(),
                                          updated_at=timezone.now())  # fmt: skip

            in_thread(create)
        return write_batch(batch, outcome, items, received_at)

    monkeypatch.setattr(imports, "write_batch", create_c_meanwhile)
    text = "email,plan\na@x.com,p1\nb@x.com,p1\nc@x.com,p2\na@x.com,p3\nd@x.com,p1\nc@x.com,p4\n"
    result = run_csv(acme, text, "email", "email", one_by_one=False)
    assert raced
    assert result["counts"] == ("done", 6, 0, 6)
    assert result["rejections"] == []
    assert [(email, dict(attributes)) for _, email, attributes in result["people"]] == [
        ("a@x.com", {"email": "a@x.com", "plan": "p3"}),
        ("b@x.com", {"email": "b@x.com", "plan": "p1"}),
        ("c@x.com", {"email": "c@x.com", "plan": "p4", "vip": True}),
        ("d@x.com", {"email": "d@x.com", "plan": "p1"}),
    ]


def test_the_drain_gets_its_turn_during_an_import(accounts, overlapped, monkeypatch):
    # The import lets go of the writer lock between stretches (none here: every chunk is
    # one): a drain batch waiting for it goes in before the import's later chunks, and they
    # read what it wrote instead of overwriting it.
    monkeypatch.setattr(imports, "STRETCH_SECONDS", 0.0)
    acme = accounts["acme"]
    write_batch, calls, drained, waited = imports.write_batch, [], threading.Event(), []

    def drain_vip() -> None:
        item = {"op": "identify", "person": {"email": "a@x.com"}, "attributes": {"vip": True},
                "update_only": True, "at": time.time() + 60, "anonymous_id": None}  # fmt: skip
        with acme:
            assert apply_items([item]).applied == 1
        drained.set()

    def write_with_a_drain_waiting(batch, outcome, items, received_at):
        calls.append(True)
        if len(calls) == 1:  # the import holds the lock now: the drain must wait for it
            threading.Thread(target=in_thread, args=(drain_vip,)).start()
            wait_for_a_lock_waiter()
        elif len(calls) == 3:
            waited.append(drained.wait(timeout=15))
        return write_batch(batch, outcome, items, received_at)

    monkeypatch.setattr(imports, "write_batch", write_with_a_drain_waiting)
    text = "email,plan\na@x.com,p1\nb@x.com,p1\nc@x.com,p1\nd@x.com,p1\ne@x.com,p1\na@x.com,p2\n"
    result = run_csv(acme, text, "email", "email", one_by_one=False)
    assert waited == [True]
    assert result["counts"] == ("done", 6, 0, 6)
    people = {email: dict(attributes) for _, email, attributes in result["people"]}
    assert people["a@x.com"] == {"email": "a@x.com", "plan": "p2", "vip": True}


def test_with_nobody_waiting_the_import_keeps_the_lock_and_its_overlap(
    accounts, overlapped, monkeypatch
):
    # Every stretch is over at once, but no other writer waits for the lock: the import keeps
    # it, and every chunk after the first is planned while the one before is written (letting
    # go would settle the chunk in flight first, and the next would be planned on its own).
    monkeypatch.setattr(imports, "STRETCH_SECONDS", 0.0)
    text = "email,plan\na@x.com,p1\nb@x.com,p1\nc@x.com,p1\nd@x.com,p1\ne@x.com,p1\nf@x.com,p1\n"
    result = run_csv(accounts["acme"], text, "email", "email", one_by_one=False)
    assert result["counts"] == ("done", 6, 0, 6)
    assert overlapped == [False, True, True, True]  # three chunks of two rows, then the end
