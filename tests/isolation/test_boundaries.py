"""The boundaries around the URLs: sessions, API credentials, the cache, background jobs and
the search path. Each test tries to cross from one account into another and must fail."""

import orjson
import psycopg
import pytest
from django.core.cache import cache
from django.db import ProgrammingError, connection, transaction

from accounts.models import Account, User
from ingest import wire
from ingest.apply import apply_items
from ingest.imports_worker import run_task
from ingest.models import DeadLetter, ImportTask
from segments import membership
from segments.models import Person
from segments.views import people_count
from tests.conftest import client_for
from tests.ingest.conftest import api_client, basic, drain, send
from tests.isolation.access_table import ANONYMOUS, TENANT_URLS
from tests.isolation.conftest import MARKERS, SHARED_HANDLER, replay
from tests.isolation.test_every_url import ask, body, is_login_redirect
from tests.segments.conftest import manual_segment, members, person

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("direction", ["acme to globex", "globex to acme"])
def test_a_session_cookie_replayed_on_another_accounts_host_gets_nothing(
    cast, acme_rows, direction
):
    """Every account URL, with a signed-in teammate's cookie sent to the other account."""
    if direction == "acme to globex":
        signed_in, other_host = client_for(cast.acme, cast.alice), cast.globex.host
    else:
        signed_in, other_host = client_for(cast.globex, cast.charlie), cast.acme.host
    replayed = replay(signed_in, other_host)
    replayed.handler = SHARED_HANDLER
    problems = []
    for route, access in TENANT_URLS.items():
        if ANONYMOUS in access.allowed:
            continue  # login pages and links that need no session
        with transaction.atomic():
            response = ask(replayed, access, acme_rows)
            connection.set_schema_to_public()
            transaction.set_rollback(True)
        if not (response.status_code in (403, 404) or is_login_redirect(response)):
            problems.append(f"/{route}: {response.status_code}")
        if any(marker in body(response) for marker in MARKERS):
            problems.append(f"/{route}: shows acme's rows")
    assert not problems


# --- API credentials ------------------------------------------------------------------------


def test_one_accounts_credentials_write_into_that_account_only(cast, spool, acme_key):
    response = send(api_client(acme_key), "put", "/api/v1/customers/shared-id",
                    {"email": "shared@example.com"})  # fmt: skip
    assert response.status_code == 200
    drain(spool)
    with cast.acme:
        assert Person.objects.filter(customer_id="shared-id").exists()
    with cast.globex:
        assert not Person.objects.filter(customer_id="shared-id").exists()


def test_a_site_id_with_another_accounts_api_key_is_refused(cast, spool, acme_key, globex_key):
    client = api_client()
    for site_id, api_key in ((acme_key.site_id, globex_key.api_key),
                             (globex_key.site_id, acme_key.api_key)):  # fmt: skip
        response = send(client, "post", "/api/v1/events", {"name": "x"},
                        HTTP_AUTHORIZATION=basic(site_id, api_key))  # fmt: skip
        assert response.status_code == 401
    assert spool.pending_count() == 0


def test_one_accounts_credentials_cannot_touch_another_accounts_segment(cast, spool, acme_key):
    with cast.globex:
        person("g-1")
        globex_segment = manual_segment("Globex VIPs")
    with cast.acme:
        person("g-1")  # the same customer id in acme: still nothing may reach globex
    response = send(api_client(acme_key), "post",
                    f"/api/v1/segments/{globex_segment.pk}/add_customers", {"ids": ["g-1"]})  # fmt: skip
    assert response.status_code == 200  # accepted without the database; the drain decides
    drain(spool)
    with cast.globex:
        assert members(globex_segment) == set()
    letter = DeadLetter.objects.get()
    assert letter.account_id == cast.acme.pk


def test_a_write_key_sends_to_its_own_account_only(cast, spool, acme_key):
    response = send(api_client(), "post", "/v1/identify", {"userId": "wk-1"},
                    HTTP_AUTHORIZATION=basic(acme_key.write_key))  # fmt: skip
    assert response.status_code == 200
    drain(spool)
    with cast.acme:
        assert Person.objects.filter(customer_id="wk-1").exists()
    with cast.globex:
        assert not Person.objects.filter(customer_id="wk-1").exists()


# --- The cache ------------------------------------------------------------------------------


def test_cache_entries_written_under_one_account_are_not_read_from_another(cast):
    with cast.acme:
        cache.set("isolation:probe", "acme's value")
        Person.objects.create(customer_id="only-acme", created_at="2026-01-01T00:00Z",
                              updated_at="2026-01-01T00:00Z")  # fmt: skip
        assert people_count() == 1  # now cached for acme
    with cast.globex:
        assert cache.get("isolation:probe") is None
        assert people_count() == 0
    connection.set_schema_to_public()
    assert cache.get("isolation:probe") is None


def test_the_cached_people_count_of_one_account_never_shows_on_another(cast):
    with cast.acme:
        for number in range(3):
            Person.objects.create(customer_id=f"a-{number}", created_at="2026-01-01T00:00Z",
                                  updated_at="2026-01-01T00:00Z")  # fmt: skip
    assert client_for(cast.acme, cast.alice).get("/people/").context["matches"] == 3
    assert client_for(cast.globex, cast.charlie).get("/people/").context["matches"] == 0


# --- Background jobs ------------------------------------------------------------------------


def test_account_work_without_an_account_fails_loudly(cast):
    """On the control plane (no account chosen) the account's tables do not exist."""
    connection.set_schema_to_public()
    # The drain talks to psycopg directly (no Django cursor wrapper), so its error is psycopg's.
    missing_table = (ProgrammingError, psycopg.errors.UndefinedTable)
    with pytest.raises(missing_table, match="does not exist"), transaction.atomic():
        apply_items([wire.cio_identify("nobody", {"plan": "free"})])
    with pytest.raises(missing_table, match="does not exist"), transaction.atomic():
        membership.sweep()


def test_an_import_task_for_an_account_that_does_not_exist_does_nothing(cast):
    task = ImportTask.objects.create(account_id=987654, import_id=1)
    run_task(task)
    task.refresh_from_db()
    assert task.finished_at is not None
    for account in (cast.acme, cast.globex):
        with account:
            assert Person.objects.count() == 0


def test_spooled_items_for_an_account_that_does_not_exist_become_dead_letters(cast, spool):
    spool.append("987654", [orjson.dumps(wire.cio_identify("ghost", {})).decode()])
    result = drain(spool)
    assert result.dead == 1
    assert DeadLetter.objects.get().error == "the account no longer exists"
    for account in (cast.acme, cast.globex):
        with account:
            assert not Person.objects.filter(customer_id="ghost").exists()


# --- The search path ------------------------------------------------------------------------


def test_an_account_request_has_only_its_own_schema_on_the_search_path(cast):
    with cast.acme:
        with connection.cursor() as cursor:
            cursor.execute("SHOW search_path")
            assert cursor.fetchone()[0].replace('"', "") == cast.acme.schema_name


def test_a_table_missing_from_an_account_schema_fails_instead_of_reading_public(cast):
    """accounts_user exists in public (staff) and in each account: drop acme's copy."""
    assert User.objects.filter(is_staff=True).exists()  # public has rows to leak
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f'DROP TABLE "{cast.acme.schema_name}".accounts_user CASCADE')
        with pytest.raises(ProgrammingError, match="accounts_user"), transaction.atomic():
            with cast.acme:
                list(User.objects.all())
        connection.set_schema_to_public()
        transaction.set_rollback(True)


def test_a_dashboard_request_with_a_missing_table_is_an_error_not_public_rows(cast):
    client = client_for(cast.acme, cast.alice)
    client.raise_request_exception = False
    with transaction.atomic():
        with connection.cursor() as cursor:
            # A same-shaped table in public that a fallback would read without complaint.
            cursor.execute(
                "CREATE TABLE public.segments_person"
                f' (LIKE "{cast.acme.schema_name}".segments_person INCLUDING ALL)'
            )
            cursor.execute(f'DROP TABLE "{cast.acme.schema_name}".segments_person CASCADE')
        response = client.get("/people/")
        connection.set_schema_to_public()
        transaction.set_rollback(True)
    assert response.status_code == 500


def test_account_schemas_are_named_by_the_server(cast):
    for account in Account.objects.exclude(schema_name="public"):
        assert account.schema_name.startswith("acct_")
        assert account.slug not in account.schema_name
