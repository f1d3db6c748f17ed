"""The segment list, a segment's page and the rule editor, as each role sees them."""

import pytest

from segments.models import Segment, SegmentVersion
from tests.conftest import client_for
from tests.segments.conftest import PLAN_IS_PRO, manual_segment, person, rule_segment

pytestmark = pytest.mark.django_db

EDITOR_POST = {
    "name": "Pro customers",
    "description": "Everyone on the pro plan",
    "r.type": "group",
    "r.op": "and",
    "r-0.type": "attribute",
    "r-0.name": "plan",
    "r-0.operator": "equals",
    "r-0.value": "pro",
}


@pytest.fixture
def pros(cast):
    with cast.acme:
        person("1", plan="pro")
        person("2", plan="pro")
        person("3", plan="free")


def test_every_role_sees_the_segment_list_and_a_segment(cast, pros):
    with cast.acme:
        segment = rule_segment("Pro customers", PLAN_IS_PRO)
    for user in (cast.alice, cast.adam, cast.mia, cast.vic):
        client = client_for(cast.acme, user)
        response = client.get("/segments/")
        assert response.status_code == 200
        assert b"Pro customers" in response.content
        response = client.get(f"/segments/{segment.pk}/")
        assert response.status_code == 200
        assert b'data-testid="member-count">2<' in response.content
        assert b"<svg" in response.content


def test_viewers_see_no_edit_controls_and_cannot_open_the_editor(cast, pros):
    with cast.acme:
        segment = rule_segment("Pro customers", PLAN_IS_PRO)
    client = client_for(cast.acme, cast.vic)
    assert b"New segment" not in client.get("/segments/").content
    assert b"Edit rules" not in client.get(f"/segments/{segment.pk}/").content
    assert client.get("/segments/new/").status_code == 403
    assert client.get(f"/segments/{segment.pk}/edit/").status_code == 403
    assert client.post("/segments/new/", {**EDITOR_POST, "save": "1"}).status_code == 403
    assert client.post(f"/segments/{segment.pk}/delete/").status_code == 403
    with cast.acme:
        assert Segment.objects.count() == 1


def test_the_editor_shows_the_live_count_and_a_sample_as_the_rule_stands(cast, pros):
    response = client_for(cast.acme, cast.mia).post("/segments/new/", EDITOR_POST)
    assert response.status_code == 200
    assert b'data-testid="live-count">2<' in response.content
    assert b"/people/" in response.content
    with cast.acme:
        assert not Segment.objects.exists()


def test_under_htmx_typing_renders_only_the_count(cast, pros):
    response = client_for(cast.acme, cast.mia).post(
        "/segments/new/?preview=1", {**EDITOR_POST, "r-0.value": "free"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    assert response.content.lstrip().startswith(b'<aside id="rule-preview"')
    assert b'data-testid="live-count">1<' in response.content


def test_a_large_account_gets_an_estimate_first_then_the_exact_count(cast, pros, monkeypatch):
    from django.db import connection

    from segments import compiler

    with cast.acme, connection.cursor() as cursor:
        cursor.execute("ANALYZE segments_person")  # the planner's count of people: 3
    monkeypatch.setattr(compiler, "ESTIMATE_FROM", 3)
    client = client_for(cast.acme, cast.mia)
    response = client.post("/segments/new/?preview=1", EDITOR_POST, HTTP_HX_REQUEST="true")
    page = response.content.decode()
    assert 'data-testid="live-count-estimate">about 2<' in page
    assert "estimated from a sample of 3 people (likely between 0 and 3)" in page
    assert 'data-testid="live-count"' not in page  # nothing is shown as exact yet
    assert 'hx-post="/segments/new/?preview=exact"' in page and 'hx-trigger="load"' in page
    response = client.post("/segments/new/?preview=exact", EDITOR_POST, HTTP_HX_REQUEST="true")
    assert b'data-testid="live-count">2<' in response.content
    assert b"live-count-estimate" not in response.content
    # Without htmx (no script to ask again), the page counts exactly at once.
    response = client.post("/segments/new/", EDITOR_POST)
    assert b'data-testid="live-count">2<' in response.content


def test_adding_a_nested_group_and_removing_a_condition_work_without_javascript(cast, pros):
    client = client_for(cast.acme, cast.mia)
    response = client.post("/segments/new/", {**EDITOR_POST, "edit": "add-group:r"})
    assert b'name="r-1.op"' in response.content
    assert b'name="r-1-0.type"' in response.content
    response = client.post("/segments/new/", {**EDITOR_POST, "edit": "remove:r-0"})
    assert b'name="r-0.type"' not in response.content


def test_saving_creates_the_segment_its_first_version_and_its_members(cast, pros):
    response = client_for(cast.acme, cast.mia).post("/segments/new/", {**EDITOR_POST, "save": "1"})
    with cast.acme:
        segment = Segment.objects.get()
        version = SegmentVersion.objects.get()
        assert segment.memberships.count() == 2
    assert response.status_code == 302
    assert response["Location"] == f"/segments/{segment.pk}/"
    assert (segment.name, segment.member_count) == ("Pro customers", 2)
    assert (version.number, version.changed_by, version.summary) == (
        1, "mia@acme.example", "created; 2 entered at once (first computation)",
    )  # fmt: skip


def test_an_htmx_save_redirects_the_browser(cast, pros):
    response = client_for(cast.acme, cast.mia).post(
        "/segments/new/", {**EDITOR_POST, "save": "1"}, HTTP_HX_REQUEST="true"
    )
    with cast.acme:
        segment = Segment.objects.get()
    assert response["HX-Redirect"] == f"/segments/{segment.pk}/"


def test_an_invalid_rule_is_not_saved_and_the_error_names_the_node(cast, pros):
    response = client_for(cast.acme, cast.mia).post(
        "/segments/new/",
        {**EDITOR_POST, "r-0.operator": "greater_than", "r-0.value": "lots", "save": "1"},
    )
    assert response.status_code == 200
    assert b"rules.children[0].value" in response.content
    assert b"must be a number" in response.content
    with cast.acme:
        assert not Segment.objects.exists()


def test_editing_a_rule_records_who_changed_what(cast, pros):
    with cast.acme:
        segment = rule_segment("Pro customers", PLAN_IS_PRO)
    client_for(cast.acme, cast.adam).post(
        f"/segments/{segment.pk}/edit/", {**EDITOR_POST, "r-0.value": "free", "save": "1"}
    )
    with cast.acme:
        versions = list(segment.versions.all())
        segment.refresh_from_db()
    assert [(v.number, v.changed_by, v.summary) for v in versions] == [
        (2, "adam@acme.example", "changed description, rules"),
        (1, "alice@acme.example", "created; 2 entered at once (first computation)"),
    ]
    assert segment.member_count == 1
    page = client_for(cast.acme, cast.vic).get(f"/segments/{segment.pk}/").content
    assert b"adam@acme.example" in page


def test_the_editor_of_a_manual_segment_has_no_rule(cast):
    with cast.acme:
        segment = manual_segment("VIPs")
    response = client_for(cast.acme, cast.mia).get(f"/segments/{segment.pk}/edit/")
    assert response.status_code == 200
    assert b'name="r.type"' not in response.content
    client_for(cast.acme, cast.mia).post(
        f"/segments/{segment.pk}/edit/", {"name": "Very important", "kind": "manual", "save": "1"}
    )
    with cast.acme:
        segment.refresh_from_db()
    assert (segment.name, segment.rules) == ("Very important", None)


def test_a_segment_that_another_reads_cannot_be_deleted(cast, pros):
    with cast.acme:
        pro = rule_segment("Pro customers", PLAN_IS_PRO)
        rule_segment("Pro readers", {"type": "segment", "segment": pro.pk, "operator": "in"})
    client = client_for(cast.acme, cast.mia)
    response = client.post(f"/segments/{pro.pk}/delete/", follow=True)
    assert b"cannot be deleted: Pro readers reads it" in response.content
    with cast.acme:
        assert Segment.objects.count() == 2


def test_email_activity_in_the_editor_counts_deliveries_and_saves(cast, pros):
    from datetime import UTC, datetime, timedelta

    from messaging.models import Delivery
    from segments.models import Person

    now = datetime.now(UTC)
    with cast.acme:
        one, two = Person.objects.get(customer_id="1"), Person.objects.get(customer_id="2")
        Delivery.objects.create(person=one, email="1@example.com", sent_at=now, opened_at=now)
        Delivery.objects.create(person=two, email="2@example.com", sent_at=now - timedelta(days=40),
                                opened_at=now - timedelta(days=40))  # fmt: skip
        # A test send is not activity.
        Delivery.objects.create(person=two, email="2@example.com", is_test=True, opened_at=now)
    opened = {**EDITOR_POST, "r-0.type": "email", "r-0.activity": "opened",
              "r-0.operator": "performed", "r-0.window": "days", "r-0.within_days": "30"}  # fmt: skip
    client = client_for(cast.acme, cast.mia)
    response = client.post("/segments/new/?preview=1", opened, HTTP_HX_REQUEST="true")
    assert b'data-testid="live-count">1<' in response.content
    response = client.post("/segments/new/?preview=1", {**opened, "r-0.within_days": "60"},
                           HTTP_HX_REQUEST="true")  # fmt: skip
    assert b'data-testid="live-count">2<' in response.content
    response = client.post("/segments/new/", {**opened, "name": "Readers", "save": "1"})
    assert response.status_code == 302
    with cast.acme:
        segment = Segment.objects.get(name="Readers")
        assert segment.member_count == 1 and segment.time_dependent
        assert segment.rules["children"][0] == {
            "type": "email", "activity": "opened", "operator": "performed", "within_days": 30,
        }  # fmt: skip


def test_a_mass_change_shows_as_one_line_on_the_segment_and_on_each_profile(
    cast, pros, monkeypatch
):
    from segments import membership
    from segments.models import Person
    from segments.rules import parse_rule
    from segments.segment_actions import save_segment

    monkeypatch.setattr(membership, "MASS_CHANGE", 2)
    with cast.acme:
        segment = rule_segment("Pro customers", PLAN_IS_PRO)
        everyone = {"type": "group", "op": "not", "children": [PLAN_IS_PRO]}
        save_segment(segment, name="Not pro", description="", rule=parse_rule(everyone),
                     changed_by="mia@acme.example")  # fmt: skip
        third = Person.objects.get(customer_id="3")
    client = client_for(cast.acme, cast.vic)
    page = client.get(f"/segments/{segment.pk}/").content.decode()
    assert "1 person, such as" in page and "2 people, such as" in page
    profile = client.get(f"/people/{third.pk}/").content.decode()
    assert "Entered <strong>Not pro</strong>" in profile


def test_the_segment_page_reads_change_sets_in_a_fixed_number_of_queries(cast, pros, monkeypatch):
    # Each change set shows a few people of its first chunk on each side: those come with the
    # change sets and are read at once, not two queries per change set and side.
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from segments import membership
    from segments.models import MembershipChangeSet
    from segments.rules import parse_rule
    from segments.segment_actions import save_segment

    monkeypatch.setattr(membership, "MASS_CHANGE", 2)
    not_pro = {"type": "group", "op": "not", "children": [PLAN_IS_PRO]}
    rules = [not_pro, PLAN_IS_PRO, not_pro, PLAN_IS_PRO, not_pro]  # each save moves everyone
    client = client_for(cast.acme, cast.vic)

    def save(saves: list[dict]) -> None:
        for rule in saves:
            save_segment(segment, name="Pro customers", description="",
                         rule=parse_rule(rule), changed_by="mia@acme.example")  # fmt: skip

    def statements() -> int:
        with CaptureQueriesContext(connection) as captured:
            page = client.get(f"/segments/{segment.pk}/").content.decode()
        assert "2 people, such as" in page and "1 person, such as" in page
        return len(captured)

    with cast.acme:
        segment = rule_segment("Pro customers", PLAN_IS_PRO)
        save(rules[:1])
    one = statements()
    with cast.acme:
        save(rules[1:])
        assert MembershipChangeSet.objects.filter(segment=segment).count() == 5
    assert statements() == one
