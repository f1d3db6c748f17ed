import re

import pytest
from django.core import mail
from django.test import Client

from accounts.models import User
from tests.conftest import PASSWORD, client_for

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "a-brand-new-passphrase-42"


def test_a_teammate_changes_their_password(cast):
    client = client_for(cast.acme, cast.vic)
    response = client.post(
        "/password/",
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert response.status_code == 302
    with cast.acme:
        assert User.objects.get(pk=cast.vic.pk).check_password(NEW_PASSWORD)


def test_a_password_reset_sends_a_link_that_sets_a_new_password(cast):
    client = Client(HTTP_HOST=cast.acme.host)
    assert client.post("/password/reset/", {"email": "mia@acme.example"}).status_code == 302
    assert mail.outbox[-1].to == ["mia@acme.example"]
    path = re.search(r"https?://[^/]+(/password/reset/\S+/)", mail.outbox[-1].body).group(1)
    form_page = client.get(path, follow=True)
    set_path = form_page.redirect_chain[-1][0]
    response = client.post(set_path, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert response.status_code == 302
    response = Client(HTTP_HOST=cast.acme.host).post(
        "/login/", {"username": "mia@acme.example", "password": NEW_PASSWORD}
    )
    assert response.status_code == 302


def test_a_reset_for_an_unknown_email_looks_the_same_and_sends_nothing(cast):
    response = Client(HTTP_HOST=cast.acme.host).post(
        "/password/reset/", {"email": "who@example.com"}
    )
    assert response.status_code == 302
    assert mail.outbox == []
