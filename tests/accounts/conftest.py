"""A second PostgreSQL server for placement and move tests, and accounts committed for real.

Moves copy with pg_dump between servers and the drain runs outside any test transaction, so
these tests commit: each account they create is removed afterwards, on whichever server it is.
"""

import itertools
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from django.conf import settings as django_settings
from django.db import connection

from accounts import actions
from accounts.models import Account, ApiKey, IssuedSecrets
from accounts.provisioning import server_url
from config.settings import database_from_url
from tests.conftest import PASSWORD
from tests.ingest.conftest import spool  # noqa: F401  (a spool of the test's own)

_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def second_server_url() -> Iterator[str]:
    from tests.drills import Cluster

    with tempfile.TemporaryDirectory(prefix="ferry-second-") as scratch:
        folder = Path(scratch)
        os.chmod(folder, 0o755)
        cluster = Cluster(folder)
        try:
            with psycopg.connect(cluster.url, autocommit=True) as conn:
                conn.execute("CREATE DATABASE ferry")
            yield cluster.url.replace("/postgres?", "/ferry?")
        finally:
            cluster.close()


@pytest.fixture
def two_servers(second_server_url, settings) -> str:
    """settings.DATA_SERVERS with `second` beside the primary; yields its name."""
    params = database_from_url(second_server_url)
    settings.DATA_SERVERS = {
        **django_settings.DATA_SERVERS,
        "second": {
            key: params[key] for key in ("NAME", "USER", "PASSWORD", "HOST", "PORT", "OPTIONS")
        },
    }
    return "second"


@pytest.fixture
def make_committed_account(django_db_setup, django_db_blocker) -> Iterator[Callable[[], Account]]:
    """Accounts created outside any test transaction, removed afterwards wherever they are."""
    created: list[Account] = []

    def make() -> Account:
        with django_db_blocker.unblock():
            connection.set_schema_to_public()
            number = next(_numbers)
            account = actions.create_account(
                slug=f"mover{number}", name=f"Mover {number}",
                owner_email=f"owner@mover{number}.example", owner_password=PASSWORD,
            )  # fmt: skip
        created.append(account)
        return account

    yield make
    with django_db_blocker.unblock():
        connection.close()
        connection.set_schema_to_public()
        for account in created:
            remove_everywhere(Account.objects.filter(pk=account.pk).first() or account)


def remove_everywhere(account: Account) -> None:
    servers = {"default", account.server}
    if account.pk and Account.objects.filter(pk=account.pk).exists():
        servers |= {move.source for move in account.moves.all()}
    for server in servers:
        if server != "default" and server not in django_settings.DATA_SERVERS:
            continue
        with psycopg.connect(server_url(server), autocommit=True) as conn:
            for (schema,) in conn.execute(
                "SELECT nspname FROM pg_namespace WHERE nspname LIKE %s",
                [account.schema_name + "%"],
            ).fetchall():
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    Account.objects.filter(pk=account.pk).delete()


@pytest.fixture
def committed_account(make_committed_account) -> Account:
    return make_committed_account()


@pytest.fixture
def committed_key(committed_account, django_db_blocker) -> IssuedSecrets:
    with django_db_blocker.unblock():
        return ApiKey.issue(committed_account, "Backend")[1]
