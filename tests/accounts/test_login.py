import pytest
from django.test import Client

from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def test_the_dashboard_requires_login(cast):
    response = Client(HTTP_HOST=cast.acme.host).get("/team/")
    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/team/"


def test_an_owner_logs_in_on_the_accounts_host(cast):
    client = Client(HTTP_HOST=cast.acme.host)
    response = client.post("/login/", {"username": "alice@acme.example", "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == "/"
    assert b"Getting started" in client.get("/").content


def test_login_ignores_the_case_of_the_email(cast):
    client = Client(HTTP_HOST=cast.acme.host)
    response = client.post("/login/", {"username": "Alice@ACME.example", "password": PASSWORD})
    assert response.status_code == 302


def test_a_wrong_password_is_refused_with_a_message(cast):
    client = Client(HTTP_HOST=cast.acme.host)
    response = client.post("/login/", {"username": "alice@acme.example", "password": "nope"})
    assert response.status_code == 200
    assert b"That email address and password do not match a login here." in response.content
    assert client.get("/").status_code == 302


def test_a_user_of_another_account_cannot_log_in(cast):
    client = Client(HTTP_HOST=cast.acme.host)
    response = client.post("/login/", {"username": "charlie@globex.example", "password": PASSWORD})
    assert response.status_code == 200
    assert b"That email address and password do not match a login here." in response.content


def test_staff_cannot_log_into_an_account_dashboard(cast):
    client = Client(HTTP_HOST=cast.acme.host)
    response = client.post("/login/", {"username": "stella@ferry.test", "password": PASSWORD})
    assert response.status_code == 200
    assert client.get("/").status_code == 302


def test_logout_ends_the_session(cast):
    client = Client(HTTP_HOST=cast.acme.host)
    client.post("/login/", {"username": "alice@acme.example", "password": PASSWORD})
    assert client.post("/logout/").status_code == 302
    assert client.get("/").status_code == 302


def test_login_follows_a_local_next_but_not_another_host(cast):
    client = Client(HTTP_HOST=cast.acme.host)
    response = client.post(
        "/login/?next=/team/",
        {"username": "alice@acme.example", "password": PASSWORD, "next": "/team/"},
    )
    assert response["Location"] == "/team/"
    client = Client(HTTP_HOST=cast.acme.host)
    response = client.post(
        "/login/",
        {
            "username": "alice@acme.example",
            "password": PASSWORD,
            "next": "http://globex.localhost/",
        },
    )
    assert response["Location"] == "/"
