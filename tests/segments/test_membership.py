"""Memberships stay current: on a rule save, after every drained batch, and by the sweep."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from ingest import wire
from segments import membership
from segments.models import MembershipChange, Person, Segment, SegmentSize
from tests.conftest import manage
from tests.ingest.conftest import drain
from tests.segments.conftest import (
    PLAN_IS_PRO,
    event,
    manual_segment,
    members,
    person,
    rule_segment,
)

pytestmark = pytest.mark.django_db


def spool_items(spool, account, *items):
    spool.append(str(account.pk), [json.dumps(item) for item in items])


def test_saving_a_rule_records_who_entered_and_who_left(cast):
    with cast.acme:
        person("1", plan="pro")
        person("2", plan="free")
        segment = rule_segment("Pro", PLAN_IS_PRO)
        assert members(segment) == {"1"}
        from segments.rules import parse_rule
        from segments.segment_actions import save_segment

        free = {**PLAN_IS_PRO, "children": [{**PLAN_IS_PRO["children"][0], "value": "free"}]}
        save_segment(segment, name="Pro", description="", rule=parse_rule(free),
                     changed_by="mia@acme.example")  # fmt: skip
        assert members(segment) == {"2"}
        log = [(c.person.customer_id, c.entered, c.cause)
               for c in MembershipChange.objects.order_by("id")]  # fmt: skip
        # The first computation writes members only (each with when they entered) and its
        # version says how many; every later change is logged person by person.
        assert log == [("2", True, "rule"), ("1", False, "rule")]
        first = segment.versions.get(number=1)
        assert first.summary == "created; 1 entered at once (first computation)"
        assert segment.memberships.get().entered_at > first.changed_at
        assert segment.member_count == 1
        assert SegmentSize.objects.get(segment=segment).size == 1


def test_a_recompute_leaves_the_planner_as_it_found_it(cast):
    # A full recompute turns nested loops off to decide who matches and hash joins off to
    # merge them with the members; the statements after those need them back: the write
    # finds who leaves with a hash (without one it compared every member with every person
    # leaving, 10 s at 87,000 and 2,000), then come the segments that read this one and the
    # caller's own queries.
    from django.db import transaction

    from segments.rules import parse_rule
    from segments.segment_actions import save_segment

    def planner() -> tuple[str, ...]:
        with connection.cursor() as cursor:
            shown = []
            for name in ("enable_hashjoin", "enable_nestloop", "enable_hashagg",
                         "parallel_setup_cost"):  # fmt: skip
                cursor.execute(f"SHOW {name}")
                shown.append(cursor.fetchone()[0])
        return tuple(shown)

    with cast.acme, transaction.atomic():
        before = planner()
        person("1", plan="pro")
        person("2", plan="free")
        segment = rule_segment("Pro", PLAN_IS_PRO)
        free = {**PLAN_IS_PRO, "children": [{**PLAN_IS_PRO["children"][0], "value": "free"}]}
        save_segment(segment, name="Pro", description="", rule=parse_rule(free),
                     changed_by="mia@acme.example")  # fmt: skip
        assert members(segment) == {"2"}
        assert planner() == before == ("on", "on", "on", "1000")


def test_deleting_people_or_segments_removes_their_memberships_and_history(cast):
    from segments.actions import delete_person
    from segments.models import Membership, Person

    with cast.acme:
        person("1", plan="pro")
        person("2", plan="pro")
        segment = rule_segment("Pro", PLAN_IS_PRO)
        other = rule_segment("Also pro", PLAN_IS_PRO)
        person("3", plan="pro")
        membership.update_people(Person.objects.values_list("pk", flat=True))
        assert members(segment) == members(other) == {"1", "2", "3"}
        assert MembershipChange.objects.count() == 2  # person 3 entering both
        delete_person(Person.objects.get(customer_id="3"), cast.mia, suppress=False)
        assert members(segment) == members(other) == {"1", "2"}
        assert not MembershipChange.objects.exists()
    with cast.acme, connection.cursor() as cursor:
        # As the drain deletes people: one statement, from another search path's point of view.
        cursor.execute("SET LOCAL search_path TO public")
        cursor.execute(
            f'DELETE FROM "{cast.acme.schema_name}".segments_person WHERE customer_id = %s', ["2"]
        )
        cursor.execute(f'SET LOCAL search_path TO "{cast.acme.schema_name}", public')
        assert members(segment) == members(other) == {"1"}
        segment.delete()
        assert set(Membership.objects.values_list("segment_id", flat=True)) == {other.pk}


def test_a_drained_batch_moves_the_people_it_touched(cast, spool):
    with cast.acme:
        person("1", plan="free")
        pro = rule_segment("Pro", PLAN_IS_PRO)
        buyers = rule_segment(
            "Buyers", {"type": "event", "name": "purchase", "operator": "at_least", "count": 2}
        )
    spool_items(
        spool, cast.acme,
        wire.cio_identify("1", {"plan": "pro"}),
        wire.cio_identify("2", {"plan": "pro"}),
        wire.cio_event("3", {"name": "purchase"}),
        wire.cio_event("3", {"name": "purchase"}),
    )  # fmt: skip
    drain(spool)
    with cast.acme:
        assert members(pro) == {"1", "2"}
        assert members(buyers) == {"3"}
        assert set(MembershipChange.objects.values_list("cause", flat=True)) == {"ingest"}
    spool_items(spool, cast.acme, wire.cio_identify("2", {"plan": "basic"}))
    drain(spool)
    with cast.acme:
        assert members(pro) == {"1"}
        pro.refresh_from_db()
        assert pro.member_count == 1


def test_a_segment_of_a_segment_follows_it_in_the_same_batch(cast, spool):
    with cast.acme:
        pro = rule_segment("Pro", PLAN_IS_PRO)
        active_pros = rule_segment("Active pros", {"type": "group", "op": "and", "children": [
            {"type": "segment", "segment": pro.pk, "operator": "in"},
            {"type": "event", "name": "login", "operator": "performed"},
        ]})  # fmt: skip
    spool_items(spool, cast.acme, wire.cio_identify("1", {"plan": "pro"}),
                wire.cio_event("1", {"name": "login"}))  # fmt: skip
    drain(spool)
    with cast.acme:
        assert members(active_pros) == {"1"}


def test_the_sweep_moves_people_out_as_time_passes(cast):
    with cast.acme:
        recent = person("1")
        event(recent, "login", days_ago=6)
        segment = rule_segment(
            "Active this week",
            {"type": "event", "name": "login", "operator": "performed", "within_days": 7},
        )
        assert segment.time_dependent
        assert members(segment) == {"1"}
        membership.sweep(now=datetime.now(UTC) + timedelta(days=2))
        assert members(segment) == set()
        assert MembershipChange.objects.filter(entered=False).get().cause == "sweep"


def test_the_sweep_command_visits_every_account(cast, test_database_url, tmp_path):
    # An empty spool of its own: with items waiting too long, the sweep would wait for the drain.
    env = {"DATABASE_URL": test_database_url, "FERRY_VAR_DIR": str(tmp_path)}
    result = manage("sweep_segments", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Swept ")
    # It ran in a governor slot (which yields to the drain), and finished.
    from maintenance.models import MaintenanceRun

    runs = MaintenanceRun.objects.filter(kind="segment sweep")
    assert [run.state for run in runs] == ["done"]
    runs.delete()  # committed by the command's process, so not rolled back with this test


def test_manual_members_move_and_segments_reading_them_follow(cast):
    with cast.acme:
        one, two = person("1"), person("2")
        vips = manual_segment("VIPs")
        not_vips = rule_segment("Not VIPs", {"type": "segment", "segment": vips.pk,
                                             "operator": "not_in"})  # fmt: skip
        assert members(not_vips) == {"1", "2"}
        membership.change_members(vips, [one.pk, two.pk], "manual")
        assert members(vips) == {"1", "2"}
        assert members(not_vips) == set()
        membership.change_members(vips, [one.pk], "manual", add=False)
        assert members(vips) == {"2"}
        assert members(not_vips) == {"1"}
        membership.change_members(vips, [one.pk], "import", replace=True)
        assert members(vips) == {"1"}
        vips.refresh_from_db()
        assert vips.member_count == 1
        assert Segment.objects.get(pk=not_vips.pk).member_count == 1


def test_a_stored_rule_that_no_longer_reads_never_blocks_the_drain(cast, spool):
    with cast.acme:
        broken = rule_segment("Pro", PLAN_IS_PRO)
        Segment.objects.filter(pk=broken.pk).update(rules={"type": "teleport"})
    spool_items(spool, cast.acme, wire.cio_identify("1", {"plan": "pro"}))
    result = drain(spool)
    assert (result.applied, result.dead) == (1, 0)


def test_a_drained_batch_asks_a_segment_only_about_people_whose_changes_it_reads(cast, spool):
    from segments.models import Membership

    with cast.acme:
        one = person("1", plan="pro")
        event(one, "login", days_ago=3)
        pro = rule_segment("Pro", PLAN_IS_PRO)
        logged_in_pros = rule_segment("Pros who logged in", {"type": "group", "op": "and",
            "children": [{"type": "segment", "segment": pro.pk, "operator": "in"},
                         {"type": "event", "name": "login", "operator": "performed"}]})  # fmt: skip
        assert pro.reads == ["attribute:plan"]
        assert logged_in_pros.reads == ["event:login", f"segment:{pro.pk}"]
        assert members(pro) == members(logged_in_pros) == {"1"}
        # Made stale behind the segments' backs, so that being asked shows.
        Membership.objects.filter(person=one).delete()
    spool_items(spool, cast.acme, wire.cio_event("1", {"name": "page_viewed"}),
                wire.cio_identify("1", {"seats": 4}))  # fmt: skip
    drain(spool)
    with cast.acme:
        assert members(pro) == members(logged_in_pros) == set()  # neither reads those
    with cast.acme:
        # Behind its back too: the plan stored is not the one sent next, so the plan changes.
        Person.objects.filter(pk=one.pk).update(attributes={"plan": "basic"})
    spool_items(spool, cast.acme, wire.cio_identify("1", {"plan": "pro"}))
    drain(spool)
    with cast.acme:
        # Pro reads the plan; entering Pro touches what the second segment reads.
        assert members(pro) == members(logged_in_pros) == {"1"}


def test_an_attribute_sent_again_with_the_same_value_asks_no_segment(cast, spool):
    from segments.models import Membership

    with cast.acme:
        one = person("1", plan="pro")
        pro = rule_segment("Pro", PLAN_IS_PRO)
        subscribed = rule_segment("Subscribed", {"type": "subscription", "state": "subscribed"})
        assert members(pro) == members(subscribed) == {"1"}
        # Made stale behind the segments' backs, so that being asked would show.
        Membership.objects.filter(person=one).delete()
    # Clients send a person's attributes with every identify: the same plan, and
    # unsubscribed false for someone subscribed, change no answer.
    spool_items(spool, cast.acme,
                wire.cio_identify("1", {"plan": "pro", "unsubscribed": False}))  # fmt: skip
    drain(spool)
    with cast.acme:
        assert members(pro) == members(subscribed) == set()
        # Their times were written all the same (a later change older than them loses).
        times = Person.objects.get(pk=one.pk).attribute_times
        assert {"plan", "unsubscribed"} <= times.keys()
    spool_items(spool, cast.acme, wire.cio_identify("1", {"plan": "basic"}))
    drain(spool)
    with cast.acme:
        assert members(subscribed) == set()  # still not asked: only the plan changed
    spool_items(spool, cast.acme, wire.cio_identify("1", {"unsubscribed": True}))
    drain(spool)
    spool_items(spool, cast.acme, wire.cio_identify("1", {"unsubscribed": False}))
    drain(spool)
    with cast.acme:
        assert members(subscribed) == {"1"}  # subscribed again: asked, and back in


def test_a_member_touched_in_what_a_segment_does_not_read_stays_in_it(cast, spool):
    with cast.acme:
        person("1", plan="pro")
        person("2", plan="free")
        pro = rule_segment("Pro", PLAN_IS_PRO)
        assert members(pro) == {"1"}
    # The same batch: someone else's plan changes (the segment is asked about them), and the
    # member does something the segment does not read (it is not asked about them).
    spool_items(spool, cast.acme, wire.cio_event("1", {"name": "page_viewed"}),
                wire.cio_identify("2", {"plan": "basic"}))  # fmt: skip
    drain(spool)
    with cast.acme:
        assert members(pro) == {"1"}
        assert not MembershipChange.objects.exists()
        pro.refresh_from_db()
        assert pro.member_count == 1


def test_a_new_person_is_asked_about_by_every_segment(cast, spool):
    with cast.acme:
        never_bought = rule_segment(
            "Never bought", {"type": "event", "name": "purchase", "operator": "not_performed"}
        )
    spool_items(spool, cast.acme, wire.cio_identify("9", {"first_name": "Ada"}))
    drain(spool)
    with cast.acme:
        assert members(never_bought) == {"9"}


def test_a_mass_change_is_one_record_and_everyone_still_sees_their_history(cast, monkeypatch):
    from segments.models import MembershipChangeSet
    from segments.rules import parse_rule
    from segments.segment_actions import save_segment

    monkeypatch.setattr(membership, "MASS_CHANGE", 3)
    monkeypatch.setattr(membership, "CHUNK", 2)
    with cast.acme:
        people = [person(str(n), plan="pro" if n == 0 else "free") for n in range(5)]
        segment = rule_segment("Pro", PLAN_IS_PRO)
        free = {**PLAN_IS_PRO, "children": [{**PLAN_IS_PRO["children"][0], "value": "free"}]}
        save_segment(segment, name="Pro", description="", rule=parse_rule(free),
                     changed_by="mia@acme.example")  # fmt: skip
        assert members(segment) == {"1", "2", "3", "4"}
        assert not MembershipChange.objects.exists()  # five moves: one record, not five
        change_set = MembershipChangeSet.objects.get()
        assert (change_set.entered, change_set.exited, change_set.cause) == (4, 1, "rule")
        chunks = [
            (c.entered, c.people) for c in change_set.chunks.order_by("-entered", "first_person")
        ]
        ids = [p.pk for p in people]
        assert chunks == [(True, ids[1:3]), (True, ids[3:5]), (False, ids[:1])]
        recent = membership.recent_changes(segment)
        assert [(e.entered, e.count, [p.customer_id for p in e.sample]) for e in recent] == [
            (True, 4, ["1", "2"]),
            (False, 1, ["0"]),
        ]  # fmt: skip (a few from the first chunk)
        for who, entered in ((people[0], False), (people[3], True)):
            history = membership.history_of(who)
            assert [(e.segment, e.entered, e.cause) for e in history] == [
                (segment, entered, "rule")
            ]
        # Below the threshold, people are logged one by one as before.
        save_segment(segment, name="Pro", description="", rule=parse_rule(PLAN_IS_PRO),
                     changed_by="mia@acme.example")  # fmt: skip
        assert MembershipChangeSet.objects.count() == 2
        segment.delete()
        assert not MembershipChangeSet.objects.exists()


def test_a_change_sets_chunks_hold_sorted_runs_of_people_and_the_last_the_rest(cast, monkeypatch):
    from segments.models import MembershipChangeSet
    from segments.rules import parse_rule
    from segments.segment_actions import save_segment

    monkeypatch.setattr(membership, "MASS_CHANGE", 3)
    monkeypatch.setattr(membership, "CHUNK", 3)
    with cast.acme:
        # Created in an order unlike their ids' (entrants are written in the key's order).
        people = [person(str(n), plan="free") for n in range(8)]
        segment = rule_segment("Pro", PLAN_IS_PRO)
        free = {**PLAN_IS_PRO, "children": [{**PLAN_IS_PRO["children"][0], "value": "free"}]}
        save_segment(segment, name="Free", description="", rule=parse_rule(free),
                     changed_by="mia@acme.example")  # fmt: skip
        change_set = MembershipChangeSet.objects.get()
        chunks = [
            (c.first_person, c.last_person, c.people)
            for c in change_set.chunks.order_by("first_person")
        ]
        ids = sorted(p.pk for p in people)
        assert chunks == [
            (ids[0], ids[2], ids[0:3]), (ids[3], ids[5], ids[3:6]), (ids[6], ids[7], ids[6:8])
        ]  # fmt: skip
        assert members(segment) == {str(n) for n in range(8)}


def test_a_drained_batch_that_moves_many_people_logs_one_change_set(cast, spool, monkeypatch):
    from segments.models import MembershipChangeSet

    monkeypatch.setattr(membership, "MASS_CHANGE", 3)
    with cast.acme:
        pro = rule_segment("Pro", PLAN_IS_PRO)
    spool_items(spool, cast.acme, *(wire.cio_identify(str(n), {"plan": "pro"}) for n in range(3)))
    drain(spool)
    with cast.acme:
        assert members(pro) == {"0", "1", "2"}
        assert not MembershipChange.objects.exists()
        change_set = MembershipChangeSet.objects.get()
        assert (change_set.entered, change_set.exited, change_set.cause) == (3, 0, "ingest")
        assert len(change_set.chunks.get().people) == 3
    spool_items(spool, cast.acme, wire.cio_identify("0", {"plan": "free"}))
    drain(spool)
    with cast.acme:
        assert MembershipChange.objects.get().entered is False  # one move: one row


def test_segments_of_one_level_write_their_moves_together(cast, spool, monkeypatch):
    from segments.models import MembershipChangeSet

    monkeypatch.setattr(membership, "MASS_CHANGE", 3)
    with cast.acme:
        for n in range(4):
            person(str(n), plan="free", seats=1)
        pro = rule_segment("Pro", PLAN_IS_PRO)
        big = rule_segment(
            "Big", {"type": "attribute", "name": "seats", "operator": "greater_than", "value": 5}
        )
        big_pros = rule_segment("Big pros", {"type": "group", "op": "and", "children": [
            {"type": "segment", "segment": pro.pk, "operator": "in"},
            {"type": "segment", "segment": big.pk, "operator": "in"},
        ]})  # fmt: skip
    spool_items(
        spool, cast.acme,
        *(wire.cio_identify(str(n), {"plan": "pro"}) for n in range(3)),
        wire.cio_identify("2", {"seats": 9}),
    )  # fmt: skip
    drain(spool)
    with cast.acme:
        assert members(pro) == {"0", "1", "2"}
        assert members(big) == members(big_pros) == {"2"}
        # Three moves in Pro: one change set; one in Big and one in Big pros: a row each.
        change_set = MembershipChangeSet.objects.get()
        assert (change_set.segment, change_set.entered, change_set.exited) == (pro, 3, 0)
        assert sorted(MembershipChange.objects.values_list("segment", "entered")) == sorted(
            [(big.pk, True), (big_pros.pk, True)]
        )
        sizes = dict(SegmentSize.objects.values_list("segment", "size"))
        assert sizes == {pro.pk: 3, big.pk: 1, big_pros.pk: 1}
        assert [s.member_count for s in Segment.objects.order_by("pk")] == [3, 1, 1]
    spool_items(spool, cast.acme, wire.cio_identify("2", {"plan": "free"}),
                wire.cio_identify("3", {"seats": 7}))  # fmt: skip
    drain(spool)
    with cast.acme:
        assert members(pro) == {"0", "1"}
        assert members(big) == {"2", "3"}
        assert members(big_pros) == set()
        assert dict(Segment.objects.values_list("pk", "member_count")) == {
            pro.pk: 2, big.pk: 2, big_pros.pk: 0
        }  # fmt: skip
