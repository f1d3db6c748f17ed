"""Manual segments: people added and removed from a profile, the people list, or a CSV."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from segments.models import MembershipChange
from tests.conftest import client_for
from tests.segments.conftest import PLAN_IS_PRO, manual_segment, members, person, rule_segment

pytestmark = pytest.mark.django_db


@pytest.fixture
def vips(cast):
    with cast.acme:
        for n in range(1, 5):
            person(str(n), email=f"p{n}@example.com")
        return manual_segment("VIPs")


def ids(account, *customer_ids):
    from segments.models import Person

    with account:
        return [str(p.pk) for p in Person.objects.filter(customer_id__in=customer_ids)]


def test_people_are_added_from_a_selection_and_sent_back_where_they_were(cast, vips):
    response = client_for(cast.acme, cast.mia).post(
        f"/segments/{vips.pk}/members/",
        {"action": "add", "person": ids(cast.acme, "1", "2"), "next": "/people/?q=p"},
    )
    assert response.status_code == 302
    assert response["Location"] == "/people/?q=p"
    with cast.acme:
        assert members(vips) == {"1", "2"}
        assert MembershipChange.objects.filter(cause="manual").count() == 2


def test_a_person_is_removed_from_their_profile(cast, vips):
    client = client_for(cast.acme, cast.mia)
    client.post(f"/segments/{vips.pk}/members/", {"action": "add", "person": ids(cast.acme, "1")})
    client.post(
        f"/segments/{vips.pk}/members/", {"action": "remove", "person": ids(cast.acme, "1")}
    )
    with cast.acme:
        assert members(vips) == set()


def test_next_may_not_point_to_another_site(cast, vips):
    response = client_for(cast.acme, cast.mia).post(
        f"/segments/{vips.pk}/members/",
        {"action": "add", "person": ids(cast.acme, "1"), "next": "https://evil.example/"},
    )
    assert response["Location"] == f"/segments/{vips.pk}/"


def test_viewers_cannot_change_members(cast, vips):
    response = client_for(cast.acme, cast.vic).post(
        f"/segments/{vips.pk}/members/", {"action": "add", "person": ids(cast.acme, "1")}
    )
    assert response.status_code == 403
    with cast.acme:
        assert members(vips) == set()


def test_a_rule_based_segment_refuses_hand_edits(cast):
    with cast.acme:
        person("1", plan="free")
        segment = rule_segment("Pro", PLAN_IS_PRO)
    response = client_for(cast.acme, cast.mia).post(
        f"/segments/{segment.pk}/members/", {"action": "add", "person": ids(cast.acme, "1")}
    )
    assert response.status_code == 404
    with cast.acme:
        assert members(segment) == set()


def upload(cast, segment, text: str, **fields):
    csv_file = SimpleUploadedFile("people.csv", text.encode(), content_type="text/csv")
    return client_for(cast.acme, cast.mia).post(
        f"/segments/{segment.pk}/upload/", {"file": csv_file, **fields}, follow=True
    )


def test_a_csv_appends_by_email_and_reports_unknown_rows(cast, vips):
    upload(cast, vips, "email\np1@example.com\n", id_type="email", mode="append")
    response = upload(cast, vips, "P2@example.com\nnobody@example.com\n", id_type="email",
                      mode="append")  # fmt: skip
    assert b"2 rows: 1 added, 0 removed, 1 not found." in response.content
    with cast.acme:
        assert members(vips) == {"1", "2"}


def test_a_csv_by_email_finds_people_whose_address_is_stored_in_mixed_case(cast, vips):
    with cast.acme:
        person("9", email="Mixed.Case@Example.com")
    response = upload(cast, vips, "email\nmixed.case@example.COM\n", id_type="email",
                      mode="append")  # fmt: skip
    assert b"1 rows: 1 added, 0 removed." in response.content
    with cast.acme:
        assert members(vips) == {"9"}


def test_a_csv_replaces_every_member_when_asked_to(cast, vips):
    upload(cast, vips, "1\n2\n", id_type="id", mode="append")
    response = upload(cast, vips, "id\n3\n", id_type="id", mode="replace")
    assert b"1 rows: 1 added, 2 removed." in response.content
    with cast.acme:
        assert members(vips) == {"3"}


def test_append_or_replace_must_be_chosen(cast, vips):
    response = upload(cast, vips, "1\n", id_type="id")
    assert b"This field is required" in response.content
    with cast.acme:
        assert members(vips) == set()
