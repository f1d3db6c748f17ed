import pytest

from accounts.models import AuditEntry
from segments.models import Event, Person, Suppression
from tests.conftest import client_for
from tests.people.conftest import QUERY_BUDGET, make_events, make_person, page_statements

pytestmark = pytest.mark.django_db


def test_the_profile_shows_identifiers_attributes_with_types_and_activity(cast, ann):
    make_events(cast.acme, ann, "purchase", 3)
    response = client_for(cast.acme, cast.vic).get(f"/people/{ann.pk}/")
    assert response.status_code == 200
    types = {a["name"]: a["type"] for a in response.context["attributes"]}
    assert types == {"plan": "string", "seats": "number", "vip": "boolean"}
    assert len(response.context["timeline"].rows) == 3
    assert response.context["summaries"][0].count == 3
    assert b"ann-1" in response.content


def test_the_timeline_filters_by_event_name_and_pages(cast, ann):
    make_events(cast.acme, ann, "purchase", 60)
    make_events(cast.acme, ann, "login", 2)
    client = client_for(cast.acme, cast.alice)
    first = client.get(f"/people/{ann.pk}/?name=purchase").context["timeline"]
    assert len(first.rows) == 50 and {e.name for e in first.rows} == {"purchase"}
    rest = client.get(f"/people/{ann.pk}/?name=purchase&after={first.next_cursor}").context[
        "timeline"
    ]
    assert len(rest.rows) == 10 and rest.next_cursor is None
    assert rest.rows[0].timestamp < first.rows[-1].timestamp


def test_another_accounts_person_is_not_found(cast, globex_person):
    assert client_for(cast.acme, cast.alice).get(f"/people/{globex_person.pk}/").status_code == 404


def test_a_member_edits_an_attribute_with_its_type_and_it_is_audited(cast, ann):
    client = client_for(cast.acme, cast.mia)
    response = client.post(
        f"/people/{ann.pk}/attributes/",
        {"attribute-name": "renewal_at", "attribute-type": "date", "attribute-value": "2027-01-31"},
    )
    assert response.status_code == 302
    with cast.acme:
        person = Person.objects.get(pk=ann.pk)
        entry = AuditEntry.objects.get()
    assert person.attributes["renewal_at"] == 1801353600
    assert (entry.actor, entry.action, entry.detail["name"]) == (
        "mia@acme.example",
        "person.attribute_set",
        "renewal_at",
    )
    types = {a["name"]: a["type"] for a in client.get(f"/people/{ann.pk}/").context["attributes"]}
    assert types["renewal_at"] == "date"


def test_a_bad_value_for_the_type_is_refused_with_a_reason(cast, ann):
    response = client_for(cast.acme, cast.mia).post(
        f"/people/{ann.pk}/attributes/",
        {"attribute-name": "seats", "attribute-type": "number", "attribute-value": "many"},
        follow=True,
    )
    assert b"Enter a number" in response.content
    with cast.acme:
        assert Person.objects.get(pk=ann.pk).attributes["seats"] == 5


def test_deleting_an_attribute(cast, ann):
    client_for(cast.acme, cast.alice).post(f"/people/{ann.pk}/attributes/plan/delete/")
    with cast.acme:
        assert "plan" not in Person.objects.get(pk=ann.pk).attributes


def test_an_attribute_edit_moves_the_person_between_segments(cast, ann):
    from segments.models import MembershipChange
    from tests.segments.conftest import PLAN_IS_PRO, members, rule_segment

    with cast.acme:
        pro = rule_segment("Pro", PLAN_IS_PRO)
        vips = rule_segment("VIPs", {"type": "attribute", "name": "vip", "operator": "exists"})
        assert members(pro) == members(vips) == {"ann-1"}
    client = client_for(cast.acme, cast.mia)
    client.post(
        f"/people/{ann.pk}/attributes/",
        {"attribute-name": "plan", "attribute-type": "string", "attribute-value": "free"},
    )
    with cast.acme:
        assert members(pro) == set()
        assert members(vips) == {"ann-1"}
        change = MembershipChange.objects.get()
        assert (change.segment, change.entered, change.cause) == (pro, False, "manual")
    client.post(f"/people/{ann.pk}/attributes/vip/delete/")
    with cast.acme:
        assert members(vips) == set()
        pro.refresh_from_db()
        assert pro.member_count == 0


def test_an_edit_keeps_what_ingestion_wrote_after_the_page_was_read(cast, ann):
    from segments import actions

    with cast.acme:
        shown = Person.objects.get(pk=ann.pk)  # the page's copy
        Person.objects.filter(pk=ann.pk).update(attributes={**shown.attributes, "seats": 9})
        actions.set_attribute(shown, cast.mia, "plan", "basic")
        attributes = Person.objects.get(pk=ann.pk).attributes
    assert (attributes["plan"], attributes["seats"]) == ("basic", 9)


def test_an_attribute_edit_takes_the_accounts_writer_lock(cast, ann):
    # As imports and the dashboard's membership changes do: the drain lets go of it between
    # batches when someone waits, and the batches after read what the edit wrote.
    from tests.threads import advisory_locks_held

    assert advisory_locks_held() == 0
    client_for(cast.acme, cast.mia).post(
        f"/people/{ann.pk}/attributes/",
        {"attribute-name": "plan", "attribute-type": "string", "attribute-value": "free"},
    )
    assert advisory_locks_held() == 1  # held until the (test's) transaction ends


@pytest.mark.parametrize("name", ["email", "unsubscribed", "anonymous_id"])
def test_identity_attributes_are_not_edited_as_plain_attributes(cast, ann, name):
    response = client_for(cast.acme, cast.mia).post(
        f"/people/{ann.pk}/attributes/",
        {"attribute-name": name, "attribute-type": "boolean", "attribute-value": "true"},
        follow=True,
    )
    assert f"Change “{name}” through ingestion or a CSV import.".encode() in response.content
    with cast.acme:
        assert name not in Person.objects.get(pk=ann.pk).attributes
        assert Person.objects.get(pk=ann.pk).unsubscribed is False


def test_viewers_cannot_change_anything(cast, ann):
    client = client_for(cast.acme, cast.vic)
    assert (
        client.post(
            f"/people/{ann.pk}/attributes/",
            {"attribute-name": "x", "attribute-type": "string", "attribute-value": "y"},
        ).status_code
        == 403
    )
    assert client.post(f"/people/{ann.pk}/attributes/plan/delete/").status_code == 403
    assert client.post(f"/people/{ann.pk}/delete/", {"suppress": "1"}).status_code == 403
    assert b"Save attribute" not in client.get(f"/people/{ann.pk}/").content
    with cast.acme:
        assert Person.objects.filter(pk=ann.pk).exists()


def test_another_account_cannot_change_this_accounts_person(cast, ann):
    client = client_for(cast.globex, cast.charlie)
    assert client.post(f"/people/{ann.pk}/delete/", {"suppress": "1"}).status_code == 404
    with cast.acme:
        assert Person.objects.filter(pk=ann.pk).exists()


def test_delete_and_suppress_removes_events_and_blocks_ingestion(cast, ann, spool, acme_key):
    from tests.ingest.conftest import api_client, drain, send

    make_events(cast.acme, ann, "purchase", 3)
    response = client_for(cast.acme, cast.alice).post(
        f"/people/{ann.pk}/delete/", {"suppress": "1"}
    )
    assert response.status_code == 302
    with cast.acme:
        assert not Person.objects.exists() and not Event.objects.exists()
        assert set(Suppression.objects.values_list("kind", "value")) == {
            ("id", "ann-1"),
            ("email", "ann@example.com"),
        }
    client = api_client(acme_key)
    send(client, "put", "/api/v1/customers/ann-1", {"plan": "back"})
    send(client, "put", "/api/v1/customers/someone-else", {"email": "ANN@example.com"})
    send(client, "post", "/api/v1/customers/ann-1/events", {"name": "x"})
    send(client, "put", "/api/v1/customers/new-person", {"plan": "x"})
    drain(spool)
    with cast.acme:
        assert list(Person.objects.values_list("customer_id", flat=True)) == ["new-person"]


def test_plain_delete_lets_ingestion_create_the_person_again(cast, ann, spool, acme_key):
    from tests.ingest.conftest import api_client, drain, send

    client_for(cast.acme, cast.alice).post(f"/people/{ann.pk}/delete/", {"suppress": "0"})
    send(api_client(acme_key), "put", "/api/v1/customers/ann-1", {"plan": "back"})
    drain(spool)
    with cast.acme:
        assert Person.objects.get().attributes == {"plan": "back"}


def test_the_audit_log_is_for_owners_and_admins(cast, ann):
    client_for(cast.acme, cast.mia).post(f"/people/{ann.pk}/attributes/plan/delete/")
    assert b"person.attribute_deleted" in client_for(cast.acme, cast.adam).get("/audit/").content
    assert client_for(cast.acme, cast.mia).get("/audit/").status_code == 403
    assert client_for(cast.acme, cast.vic).get("/audit/").status_code == 403
    assert (
        b"person.attribute_deleted"
        not in client_for(cast.globex, cast.charlie).get("/audit/").content
    )


def test_a_deleted_profile_is_gone(cast, ann):
    make_person(cast.acme, "other")
    client_for(cast.acme, cast.alice).post(f"/people/{ann.pk}/delete/", {"suppress": "0"})
    assert client_for(cast.acme, cast.alice).get(f"/people/{ann.pk}/").status_code == 404


def test_team_and_key_changes_are_audited_too(cast):
    client = client_for(cast.acme, cast.alice)
    client.post("/team/invite/", {"email": "new@example.com", "role": "viewer"})
    client.post(f"/team/{cast.mia.pk}/role/", {"role": "admin"})
    client.post("/settings/api-keys/new/", {"name": "Backend"})
    with cast.acme:
        actions = list(AuditEntry.objects.order_by("id").values_list("action", "target"))
    assert actions == [
        ("team.invited", "new@example.com"),
        ("team.role_changed", "mia@acme.example"),
        ("api_key.created", "Backend"),
    ]


def test_the_profile_shows_segments_and_adds_to_a_manual_one(cast, ann):
    from segments.models import Membership, Segment

    with cast.acme:
        vips = Segment.objects.create(name="VIPs", kind=Segment.Kind.MANUAL)
    client = client_for(cast.acme, cast.mia)
    response = client.post(
        "/people/segments/",
        {"segment": vips.pk, "action": "add", "person": ann.pk, "next": f"/people/{ann.pk}/"},
    )
    assert response["Location"] == f"/people/{ann.pk}/"
    page = client.get(f"/people/{ann.pk}/")
    assert [m.segment.name for m in page.context["memberships"]] == ["VIPs"]
    assert b"Entered <strong>VIPs</strong>" in page.content
    listed = client.get(f"/people/?segment={vips.pk}").context["page"].rows
    assert [p.pk for p in listed] == [ann.pk]
    with cast.acme:
        assert Membership.objects.count() == 1


def test_viewers_cannot_change_segment_membership(cast, ann):
    from segments.models import Segment

    with cast.acme:
        vips = Segment.objects.create(name="VIPs", kind=Segment.Kind.MANUAL)
    response = client_for(cast.acme, cast.vic).post(
        "/people/segments/", {"segment": vips.pk, "action": "add", "person": ann.pk}
    )
    assert response.status_code == 403


def test_the_profile_reads_within_its_query_budget(cast, ann):
    # The profile reads the account's segments once for memberships, history and the manual
    # segments' list.
    from segments.membership import Cause, change_members
    from segments.models import Segment

    make_events(cast.acme, ann, "purchase", 3)
    with cast.acme:
        vip = Segment.objects.create(name="VIP", kind=Segment.Kind.MANUAL)
        Segment.objects.create(name="Beta", kind=Segment.Kind.MANUAL)
        change_members(vip, [ann.pk], Cause.MANUAL)
    response, statements = page_statements(client_for(cast.acme, cast.vic), f"/people/{ann.pk}/")
    assert [m.segment.name for m in response.context["memberships"]] == ["VIP"]
    assert [(c.segment.name, c.entered) for c in response.context["membership_changes"]] == [
        ("VIP", True)
    ]
    assert [s.name for s in response.context["manual_segments"]] == ["Beta", "VIP"]
    assert len(statements) <= QUERY_BUDGET, statements
