"""Nothing of one account may be read or written from another account's host or session."""

import re

import pytest
from django.core import mail
from django.test import Client

from accounts.models import Invitation, Role
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

DASHBOARD_PAGES = ["/", "/team/", "/password/"]


def replay_cookies(source: Client, host: str) -> Client:
    target = Client(HTTP_HOST=host)
    target.cookies = source.cookies
    return target


@pytest.mark.parametrize("path", DASHBOARD_PAGES)
def test_dashboard_pages_refuse_anonymous_users(cast, path):
    response = Client(HTTP_HOST=cast.acme.host).get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


@pytest.mark.parametrize("path", DASHBOARD_PAGES)
def test_a_session_from_one_account_is_anonymous_on_another(cast, path):
    acme_client = client_for(cast.acme, cast.alice)
    assert acme_client.get(path).status_code == 200
    replayed = replay_cookies(acme_client, cast.globex.host)
    response = replayed.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_a_replayed_session_cannot_post_to_another_account(cast):
    acme_client = client_for(cast.acme, cast.alice)
    replayed = replay_cookies(acme_client, cast.globex.host)
    response = replayed.post("/team/invite/", {"email": "mallory@evil.example", "role": "owner"})
    assert response.status_code in (302, 403)
    with cast.globex:
        assert not Invitation.objects.filter(email="mallory@evil.example").exists()


def test_staff_pages_refuse_account_users(cast):
    acme_client = client_for(cast.acme, cast.alice)
    replayed = replay_cookies(acme_client, "localhost")
    response = replayed.get("/staff/")
    assert response.status_code == 302
    assert response["Location"].startswith("/staff/login/")


def test_staff_login_refuses_account_users_credentials(cast):
    response = Client(HTTP_HOST="localhost").post(
        "/staff/login/",
        {"username": "alice@acme.example", "password": "correct-horse-battery-staple"},
    )
    assert response.status_code == 200
    assert b"That email address and password do not match a login here." in response.content


def test_a_staff_session_means_nothing_on_an_account_host(cast):
    staff_client = client_for(None, cast.stella)
    assert staff_client.get("/staff/").status_code == 200
    replayed = replay_cookies(staff_client, cast.acme.host)
    assert replayed.get("/").status_code == 302


def test_an_invitation_link_from_one_account_is_refused_by_another(cast, committed):
    with committed():
        client_for(cast.acme, cast.alice).post(
            "/team/invite/", {"email": "newbie@example.com", "role": Role.MEMBER}
        )
    link = re.search(r"https?://[^/]+(/invitations/[^/\s]+/)", mail.outbox[-1].body).group(1)
    assert Client(HTTP_HOST=cast.acme.host).get(link).status_code == 200
    assert Client(HTTP_HOST=cast.globex.host).get(link).status_code == 404


def test_a_password_reset_link_from_one_account_is_refused_by_another(cast):
    Client(HTTP_HOST=cast.acme.host).post("/password/reset/", {"email": "alice@acme.example"})
    path = re.search(r"https?://[^/]+(/password/reset/\S+/)", mail.outbox[-1].body).group(1)
    response = Client(HTTP_HOST=cast.globex.host).get(path, follow=True)
    assert b"This link no longer works" in response.content
    response = Client(HTTP_HOST=cast.acme.host).get(path, follow=True)
    assert b"Choose a new password" in response.content


def test_a_password_reset_on_another_account_sends_nothing_for_a_foreign_email(cast):
    Client(HTTP_HOST=cast.globex.host).post("/password/reset/", {"email": "alice@acme.example"})
    assert mail.outbox == []
