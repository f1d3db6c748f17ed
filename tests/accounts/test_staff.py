import pytest
from django.core import mail
from django.db import connection
from django.test import Client

from accounts.models import Account, Domain, Role, User
from tests.conftest import PASSWORD, client_for

pytestmark = pytest.mark.django_db


def test_staff_log_in_to_the_console(cast):
    client = Client(HTTP_HOST="localhost")
    response = client.post("/staff/login/", {"username": "stella@ferry.test", "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == "/staff/"
    assert b"acme" in client.get("/staff/").content


def test_a_control_plane_user_who_is_not_staff_is_refused(cast):
    response = Client(HTTP_HOST="localhost").post(
        "/staff/login/", {"username": "paul@ferry.test", "password": PASSWORD}
    )
    assert b"This login is for staff only" in response.content
    assert client_for(None, cast.paul).get("/staff/").status_code == 403


def test_the_console_lists_accounts_with_their_schemas(cast):
    response = client_for(None, cast.stella).get("/staff/")
    assert cast.acme.schema_name.encode() in response.content
    assert b"globex.localhost" in response.content


def test_the_account_page_shows_its_team(cast):
    response = client_for(None, cast.stella).get("/staff/accounts/acme/")
    assert b"vic@acme.example" in response.content
    assert b"charlie@globex.example" not in response.content
    assert client_for(None, cast.stella).get("/staff/accounts/nope/").status_code == 404


def test_staff_create_an_account_whose_owner_can_log_in(cast):
    response = client_for(None, cast.stella).post(
        "/staff/",
        {
            "slug": "initech",
            "name": "Initech",
            "owner_email": "bill@initech.example",
            "owner_password": PASSWORD,
        },
    )
    assert response.status_code == 302
    assert connection.schema_name == "public"
    account = Account.objects.get(slug="initech")
    assert Domain.objects.get(tenant=account).domain == "initech.localhost"
    assert account.schema_name.startswith("acct_") and "initech" not in account.schema_name
    client = Client(HTTP_HOST="initech.localhost")
    response = client.post("/login/", {"username": "bill@initech.example", "password": PASSWORD})
    assert response.status_code == 302
    with account:
        assert User.objects.get().role == Role.OWNER


def test_an_owner_without_a_password_is_emailed_a_link(cast, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        client_for(None, cast.stella).post(
            "/staff/", {"slug": "initech", "name": "Initech", "owner_email": "bill@initech.example"}
        )
    assert mail.outbox[-1].to == ["bill@initech.example"]
    assert "http://initech.localhost:8000/password/reset/" in mail.outbox[-1].body


@pytest.mark.parametrize(
    ("slug", "problem"),
    [
        ("acme", b"already exists"),
        ("status", b"is reserved"),
        ("Bad Slug!", b"lowercase letters"),
        ("-x", b"lowercase letters"),
    ],
)
def test_bad_slugs_are_refused_with_a_reason(cast, slug, problem):
    response = client_for(None, cast.stella).post(
        "/staff/", {"slug": slug, "name": "X", "owner_email": "x@example.com"}
    )
    assert response.status_code == 200
    assert problem in response.content
    assert Account.objects.count() == 2


def test_account_users_cannot_create_accounts(cast):
    response = Client(HTTP_HOST="localhost").post(
        "/staff/", {"slug": "sneaky", "name": "X", "owner_email": "x@example.com"}
    )
    assert response.status_code == 302
    assert not Account.objects.filter(slug="sneaky").exists()
