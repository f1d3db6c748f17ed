import re

import pytest
from django.core import mail
from django.test import Client

from accounts.models import Invitation, Role, User
from tests.conftest import PASSWORD, client_for

pytestmark = pytest.mark.django_db


def invitation_path() -> str:
    return re.search(r"https?://[^/]+(/invitations/[^/\s]+/)", mail.outbox[-1].body).group(1)


def test_every_role_sees_the_team(cast):
    for user in (cast.alice, cast.adam, cast.mia, cast.vic):
        response = client_for(cast.acme, user).get("/team/")
        assert response.status_code == 200
        assert b"mia@acme.example" in response.content
        assert b"charlie@globex.example" not in response.content


def test_viewers_and_members_see_no_team_controls(cast):
    for user in (cast.mia, cast.vic):
        response = client_for(cast.acme, user).get("/team/")
        assert b"Invite a teammate" not in response.content
        assert b"/remove/" not in response.content


def test_an_owner_invites_a_teammate_by_email_with_a_link(cast, committed):
    with committed():
        response = client_for(cast.acme, cast.alice).post(
            "/team/invite/", {"email": "Nina@Example.com", "role": Role.ADMIN}
        )
    assert response.status_code == 302
    with cast.acme:
        invitation = Invitation.objects.get()
    assert (invitation.email, invitation.role) == ("nina@example.com", Role.ADMIN)
    assert mail.outbox[-1].to == ["nina@example.com"]
    assert f"http://{cast.acme.host}:8000/invitations/" in mail.outbox[-1].body


@pytest.mark.parametrize("who", ["mia", "vic"])
def test_members_and_viewers_cannot_invite(cast, who):
    response = client_for(cast.acme, getattr(cast, who)).post(
        "/team/invite/", {"email": "x@example.com", "role": Role.VIEWER}
    )
    assert response.status_code == 403
    with cast.acme:
        assert not Invitation.objects.exists()


def test_an_admin_cannot_invite_an_owner(cast):
    response = client_for(cast.acme, cast.adam).post(
        "/team/invite/", {"email": "boss@example.com", "role": Role.OWNER}
    )
    assert response.status_code == 200
    assert b"Select a valid choice" in response.content
    with cast.acme:
        assert not Invitation.objects.exists()


def test_inviting_a_current_teammate_is_refused(cast):
    response = client_for(cast.acme, cast.alice).post(
        "/team/invite/", {"email": "mia@acme.example", "role": Role.VIEWER}
    )
    assert b"already on the team" in response.content


def test_an_htmx_invite_rerenders_the_team_panel(cast):
    response = client_for(cast.acme, cast.alice).post(
        "/team/invite/", {"email": "hx@example.com", "role": Role.MEMBER}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="team-panel"')
    assert "hx@example.com" in body
    assert "<html" not in body


def test_accepting_an_invitation_creates_the_teammate_and_logs_them_in(cast, committed):
    with committed():
        client_for(cast.acme, cast.alice).post(
            "/team/invite/", {"email": "nina@example.com", "role": Role.VIEWER}
        )
    client = Client(HTTP_HOST=cast.acme.host)
    path = invitation_path()
    response = client.post(path, {"name": "Nina", "password1": PASSWORD, "password2": PASSWORD})
    assert response.status_code == 302
    assert client.get("/").status_code == 200
    with cast.acme:
        nina = User.objects.get(email="nina@example.com")
        assert nina.role == Role.VIEWER
        assert Invitation.objects.get().accepted_at is not None
    # A used link does not work twice.
    assert Client(HTTP_HOST=cast.acme.host).get(path).status_code == 404


def test_a_weak_password_is_refused_when_accepting(cast, committed):
    with committed():
        client_for(cast.acme, cast.alice).post(
            "/team/invite/", {"email": "nina@example.com", "role": Role.VIEWER}
        )
    response = Client(HTTP_HOST=cast.acme.host).post(
        invitation_path(), {"name": "Nina", "password1": "123", "password2": "123"}
    )
    assert response.status_code == 200
    assert b"This password is too short" in response.content


def test_a_revoked_invitation_link_stops_working(cast, committed):
    owner = client_for(cast.acme, cast.alice)
    with committed():
        owner.post("/team/invite/", {"email": "nina@example.com", "role": Role.VIEWER})
    with cast.acme:
        invitation = Invitation.objects.get()
    assert owner.post(f"/team/invitations/{invitation.pk}/revoke/").status_code == 302
    assert Client(HTTP_HOST=cast.acme.host).get(invitation_path()).status_code == 404


def test_an_owner_changes_a_role(cast):
    response = client_for(cast.acme, cast.alice).post(
        f"/team/{cast.mia.pk}/role/", {"role": Role.ADMIN}
    )
    assert response.status_code == 302
    with cast.acme:
        assert User.objects.get(pk=cast.mia.pk).role == Role.ADMIN


def test_an_admin_cannot_touch_an_owner(cast):
    client = client_for(cast.acme, cast.adam)
    assert client.post(f"/team/{cast.alice.pk}/role/", {"role": Role.VIEWER}).status_code == 403
    assert client.post(f"/team/{cast.alice.pk}/remove/").status_code == 403
    with cast.acme:
        assert User.objects.get(pk=cast.alice.pk).role == Role.OWNER


def test_nobody_changes_their_own_role(cast):
    response = client_for(cast.acme, cast.alice).post(
        f"/team/{cast.alice.pk}/role/", {"role": Role.VIEWER}
    )
    assert response.status_code == 403


def test_a_viewer_cannot_change_roles(cast):
    response = client_for(cast.acme, cast.vic).post(
        f"/team/{cast.mia.pk}/role/", {"role": Role.OWNER}
    )
    assert response.status_code == 403


def test_a_removed_teammate_loses_access_at_once(cast):
    mia_client = client_for(cast.acme, cast.mia)
    assert mia_client.get("/").status_code == 200
    client_for(cast.acme, cast.alice).post(f"/team/{cast.mia.pk}/remove/")
    assert mia_client.get("/").status_code == 302
    response = Client(HTTP_HOST=cast.acme.host).post(
        "/login/", {"username": "mia@acme.example", "password": PASSWORD}
    )
    assert response.status_code == 200


def test_managing_a_user_of_another_account_by_id_finds_nobody(cast):
    # Charlie's id means nothing on acme's host: ids resolve in acme's schema only.
    with cast.acme:
        unused_id = User.objects.order_by("-pk").first().pk + 100
    response = client_for(cast.acme, cast.alice).post(f"/team/{unused_id}/remove/")
    assert response.status_code == 404
