import json
import re
from io import StringIO

import pytest
from django.core import mail
from django.core.management import CommandError, call_command

from accounts.models import Account, User

pytestmark = pytest.mark.django_db


def create_account(*args: str) -> str:
    out = StringIO()
    call_command("create_account", *args, stdout=out)
    return out.getvalue()


def test_it_creates_an_account_and_prints_json(cast):
    created = json.loads(
        create_account(
            "hooli",
            "--name",
            "Hooli",
            "--owner-email",
            "gavin@hooli.example",
            "--owner-password",
            "correct-horse-battery-staple",
            "--json",
        )
    )
    account = Account.objects.get(slug="hooli")
    assert created == {
        "slug": "hooli",
        "name": "Hooli",
        "schema": account.schema_name,
        "domain": "hooli.localhost",
        "login_url": "http://hooli.localhost:8000/login/",
        "owner_email": "gavin@hooli.example",
    }
    with account:
        assert User.objects.get().check_password("correct-horse-battery-staple")


def test_without_a_password_the_owner_is_emailed_a_link(cast, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        create_account("hooli", "--name", "Hooli", "--owner-email", "gavin@hooli.example")
    assert mail.outbox[-1].to == ["gavin@hooli.example"]


def test_it_refuses_a_taken_slug_with_a_clear_error(cast):
    with pytest.raises(CommandError, match=re.escape("slug: An account “acme” already exists.")):
        create_account("acme", "--name", "Again", "--owner-email", "a@b.example")


def test_it_refuses_a_bad_email(cast):
    with pytest.raises(CommandError, match=re.escape("owner_email: Enter a valid email address.")):
        create_account("hooli", "--name", "Hooli", "--owner-email", "not-an-email")
