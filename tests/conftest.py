"""The fixed cast every test can use, built once per test database.

acme:    owner Alice, admin Adam, member Mia, viewer Vic
globex:  owner Charlie (the outsider from another account)
public:  staff Stella, and Paul, a control-plane user who is not staff
"""

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.test import Client

from accounts import actions
from accounts.models import Account, Role, User

PASSWORD = "correct-horse-battery-staple"
BASE_DIR = Path(__file__).resolve().parent.parent


@dataclass
class Cast:
    acme: Account
    globex: Account
    alice: User
    adam: User
    mia: User
    vic: User
    charlie: User
    stella: User
    paul: User


def pytest_configure(config: pytest.Config) -> None:
    # Manifest static storage needs collected files; collect once, not once per worker.
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        call_command("collectstatic", interactive=False, verbosity=0)


def _build_cast() -> Cast:
    acme = actions.create_account(
        slug="acme", name="Acme Corporation", owner_email="alice@acme.example",
        owner_password=PASSWORD,
    )
    globex = actions.create_account(
        slug="globex", name="Globex Corporation", owner_email="charlie@globex.example",
        owner_password=PASSWORD,
    )
    with acme:
        alice = User.objects.get(email="alice@acme.example")
        adam = User.objects.create_user("adam@acme.example", PASSWORD, name="Adam", role=Role.ADMIN)
        mia = User.objects.create_user("mia@acme.example", PASSWORD, name="Mia", role=Role.MEMBER)
        vic = User.objects.create_user("vic@acme.example", PASSWORD, name="Vic", role=Role.VIEWER)
    with globex:
        charlie = User.objects.get(email="charlie@globex.example")
    stella = User.objects.create_superuser("stella@ferry.test", PASSWORD, name="Stella")
    paul = User.objects.create_user("paul@ferry.test", PASSWORD, name="Paul")
    return Cast(acme, globex, alice, adam, mia, vic, charlie, stella, paul)


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker) -> Iterator[None]:
    with django_db_blocker.unblock():
        _build_cast()
    yield


@pytest.fixture
def cast(db) -> Cast:
    acme, globex = Account.objects.get(slug="acme"), Account.objects.get(slug="globex")
    with acme:
        team = {user.email.split("@")[0]: user for user in User.objects.all()}
    with globex:
        charlie = User.objects.get(email="charlie@globex.example")
    staff = {user.email.split("@")[0]: user for user in User.objects.all()}
    return Cast(
        acme, globex, team["alice"], team["adam"], team["mia"], team["vic"], charlie,
        staff["stella"], staff["paul"],
    )


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """Run the block's on-commit side effects (emails) as a real commit would."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture(autouse=True)
def _public_schema_between_tests() -> Iterator[None]:
    connection.set_schema_to_public()
    yield
    connection.set_schema_to_public()


def host_of(account: Account | None) -> str:
    return account.host if account else settings.BASE_DOMAIN


def client_for(account: Account | None, user: User | None = None) -> Client:
    """A test client on an account's host (or the public host), logged in as `user`."""
    client = Client(HTTP_HOST=host_of(account))
    if user is not None:
        if account is None:
            client.force_login(user)
        else:
            with account:
                client.force_login(user)
    return client


@pytest.fixture
def test_database_url(db) -> str:
    """A URL for the test database, for processes started by a test."""
    params = connection.settings_dict
    host = params["HOST"]
    if host.startswith("/"):
        return f"postgresql://{params['USER']}@/{params['NAME']}?host={host}"
    return f"postgresql://{params['USER']}:{params['PASSWORD']}@{host}:{params['PORT']}/{params['NAME']}"


def manage(*args: str, env: dict[str, str] | None = None, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR, env={**os.environ, **(env or {})},
        capture_output=True, text=True, timeout=timeout,
    )
