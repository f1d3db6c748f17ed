"""The fixed cast every test can use, built once per test database.

acme:    owner Alice, admin Adam, member Mia, viewer Vic
globex:  owner Charlie (the outsider from another account)
public:  staff Stella, and Paul, a control-plane user who is not staff
"""

import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.error import HTTPError
from urllib.parse import quote
from urllib.request import Request, urlopen

import pytest
from django.conf import settings
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import setup_databases, teardown_databases

from accounts import actions
from accounts.models import Account, ApiKey, IssuedSecrets, Role, User
from ingest import spool as spool_module

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
        slug="acme",
        name="Acme Corporation",
        owner_email="alice@acme.example",
        owner_password=PASSWORD,
    )
    globex = actions.create_account(
        slug="globex",
        name="Globex Corporation",
        owner_email="charlie@globex.example",
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
def django_db_setup(request, django_test_environment, django_db_blocker) -> Iterator[None]:
    """The test database with the cast, for every test.

    pytest-django only creates it when a collected test is marked django_db; tests that talk to
    a server process (HTTP, browser) need it as well, without a transaction of their own.
    """
    with django_db_blocker.unblock():
        config = setup_databases(
            verbosity=request.config.option.verbose, interactive=False, aliases={"default"}
        )
        _build_cast()
    yield
    with django_db_blocker.unblock():
        teardown_databases(config, verbosity=request.config.option.verbose)


@pytest.fixture(scope="session")
def committed_keys(django_db_setup, django_db_blocker) -> dict[str, IssuedSecrets]:
    """Keys a server process can see: committed outside any test's transaction."""
    with django_db_blocker.unblock():
        return {
            slug: ApiKey.issue(Account.objects.get(slug=slug), "Committed")[1]
            for slug in ("acme", "globex")
        }


@pytest.fixture
def cast(db) -> Cast:
    acme, globex = Account.objects.get(slug="acme"), Account.objects.get(slug="globex")
    with acme:
        team = {user.email.split("@")[0]: user for user in User.objects.all()}
    with globex:
        charlie = User.objects.get(email="charlie@globex.example")
    staff = {user.email.split("@")[0]: user for user in User.objects.all()}
    return Cast(
        acme,
        globex,
        team["alice"],
        team["adam"],
        team["mia"],
        team["vic"],
        charlie,
        staff["stella"],
        staff["paul"],
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


@pytest.fixture(autouse=True)
def _own_spool(tmp_path, settings) -> Iterator[None]:
    # Items a test leaves in the spool must not age into another test's signals or counts.
    path = settings.INGEST_SPOOL_PATH = tmp_path / "default-spool.sqlite3"
    yield
    spool_module._spools.pop(path, None)


@pytest.fixture(autouse=True)
def _empty_cache() -> None:
    # Each test's rows are rolled back; counts cached from them must not outlive them.
    cache.clear()


class FerryClient(Client):
    """A test client that leaves the connection on the public schema after each request.

    Serving an account's request leaves the connection on that schema alone (the next request
    would reset it); tests read control-plane rows right after, as another request would.
    """

    def request(self, **request):
        try:
            return super().request(**request)
        finally:
            connection.set_schema_to_public()


def host_of(account: Account | None) -> str:
    return account.host if account else settings.BASE_DOMAIN


def client_for(account: Account | None, user: User | None = None) -> Client:
    """A test client on an account's host (or the public host), logged in as `user`."""
    client = FerryClient(HTTP_HOST=host_of(account))
    if user is not None:
        if account is None:
            client.force_login(user)
        else:
            with account:
                client.force_login(user)
    return client


def database_url(name: str) -> str:
    """A URL for database `name` on the test server, for processes started by a test."""
    params = connection.settings_dict
    user, password, host = quote(params["USER"]), quote(params["PASSWORD"]), params["HOST"]
    if host.startswith("/"):
        return f"postgresql://{user}@/{name}?host={host}"
    return f"postgresql://{user}:{password}@{host}:{params['PORT']}/{name}"


@pytest.fixture(scope="session")
def test_database_url(django_db_setup) -> str:
    return database_url(connection.settings_dict["NAME"])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(
    url: str, host: str, process: subprocess.Popen, timeout: float = 60, context=None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            urlopen(Request(url, headers={"Host": host}), timeout=2, context=context)
            return
        except HTTPError:
            return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


@contextmanager
def gunicorn(
    database_url: str,
    workers: int = 2,
    env: dict[str, str] | None = None,
    tls: tuple[str, str, ssl.SSLContext] | None = None,
    ready_path: str = "/static/img/ferry.svg",
) -> Iterator[str]:
    """Ferry under gunicorn on a free port, using `database_url`; yields the port.

    `tls` is (certificate file, key file, a client context that trusts it) to serve HTTPS.
    """
    port = free_port()
    command = [
        sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{port}",
        "--workers", str(workers), "--log-level", "warning",
    ]  # fmt: skip
    if tls:
        command += ["--certfile", tls[0], "--keyfile", tls[1]]
    server = subprocess.Popen(
        command,
        cwd=BASE_DIR,
        env={**os.environ, "DATABASE_URL": database_url, "SITE_PORT": str(port), **(env or {})},
    )
    scheme = "https" if tls else "http"
    try:
        wait_for_http(
            f"{scheme}://127.0.0.1:{port}{ready_path}", "localhost", server,
            context=tls[2] if tls else None,
        )  # fmt: skip
        yield str(port)
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture(scope="session")
def ferry_server_spool(tmp_path_factory) -> Path:
    """The spool of `ferry_server`, a file of this test session's own."""
    return tmp_path_factory.mktemp("ferry-server") / "spool.sqlite3"


@pytest.fixture(scope="session")
def ferry_server(test_database_url, ferry_server_spool) -> Iterator[str]:
    """Ferry under gunicorn serving the test database and its cast; yields the port."""
    with gunicorn(test_database_url, env={"INGEST_SPOOL_PATH": str(ferry_server_spool)}) as port:
        yield port


def manage(
    *args: str, env: dict[str, str] | None = None, timeout: int = 120
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
