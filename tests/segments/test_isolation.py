"""Every segment view refuses anonymous users, other accounts' users and other accounts' ids."""

import pytest
from django.test import Client

from segments.models import Segment
from tests.conftest import client_for
from tests.segments.conftest import PLAN_IS_PRO, manual_segment, person, rule_segment

pytestmark = pytest.mark.django_db

PAGES = ["/segments/", "/segments/new/", "/segments/{id}/", "/segments/{id}/edit/"]
ACTIONS = ["/segments/{id}/delete/", "/segments/{id}/members/", "/segments/{id}/upload/",
           "/segments/{id}/edit/", "/segments/new/"]  # fmt: skip


@pytest.fixture
def globex_segment(cast) -> Segment:
    with cast.globex:
        return rule_segment("Globex pros", PLAN_IS_PRO, by="charlie@globex.example")


@pytest.fixture
def acme_segment(cast) -> Segment:
    with cast.acme:
        return manual_segment("Acme VIPs")


@pytest.mark.parametrize("path", PAGES)
def test_anonymous_users_are_sent_to_log_in(cast, acme_segment, path):
    response = Client(HTTP_HOST=cast.acme.host).get(path.format(id=acme_segment.pk))
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


@pytest.mark.parametrize("path", ACTIONS)
def test_anonymous_posts_change_nothing(cast, acme_segment, path):
    response = Client(HTTP_HOST=cast.acme.host).post(
        path.format(id=acme_segment.pk), {"name": "x", "save": "1", "action": "remove"}
    )
    assert response.status_code == 302
    with cast.acme:
        assert Segment.objects.get().name == "Acme VIPs"


@pytest.mark.parametrize("path", PAGES)
def test_another_accounts_session_is_anonymous_here(cast, acme_segment, path):
    globex_client = client_for(cast.globex, cast.charlie)
    replayed = Client(HTTP_HOST=cast.acme.host)
    replayed.cookies = globex_client.cookies
    response = replayed.get(path.format(id=acme_segment.pk))
    assert response.status_code == 302


@pytest.mark.parametrize("path", PAGES[2:])
def test_another_accounts_segment_id_is_not_found(cast, globex_segment, path):
    response = client_for(cast.acme, cast.alice).get(path.format(id=globex_segment.pk))
    assert response.status_code == 404


@pytest.mark.parametrize("path", ACTIONS[:3])
def test_another_accounts_segment_id_cannot_be_changed(cast, globex_segment, path):
    response = client_for(cast.acme, cast.alice).post(
        path.format(id=globex_segment.pk), {"action": "add", "person": "1"}
    )
    assert response.status_code == 404
    with cast.globex:
        assert Segment.objects.get().name == "Globex pros"


def test_the_list_shows_only_this_accounts_segments(cast, globex_segment, acme_segment):
    content = client_for(cast.acme, cast.alice).get("/segments/").content
    assert b"Acme VIPs" in content
    assert b"Globex pros" not in content


def test_a_rule_cannot_read_another_accounts_segment(cast, globex_segment):
    with cast.acme:
        person("1", plan="pro")
    response = client_for(cast.acme, cast.alice).post("/segments/new/", {
        "name": "Sneaky", "r.type": "segment", "r.segment": str(globex_segment.pk),
        "r.operator": "in", "save": "1",
    })  # fmt: skip
    assert response.status_code == 200
    assert f"there is no segment {globex_segment.pk}".encode() in response.content
    with cast.acme:
        assert not Segment.objects.exists()
