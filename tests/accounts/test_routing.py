import pytest
from django.db import ProgrammingError, connection
from django.test import Client

from accounts.models import Domain
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def test_the_base_domain_is_the_public_side(cast):
    response = Client(HTTP_HOST="localhost").get("/")
    assert response.status_code == 200
    assert b"staff console" in response.content


def test_loopback_addresses_are_the_public_side(cast):
    assert Client(HTTP_HOST="127.0.0.1").get("/").status_code == 200


def test_an_account_host_serves_that_accounts_dashboard(cast):
    response = client_for(cast.acme, cast.alice).get("/")
    assert response.status_code == 200
    assert b"Acme Corporation" in response.content
    assert b"Globex" not in response.content


def test_an_unknown_tenant_looking_host_answers_404(cast):
    response = Client(HTTP_HOST="initech.localhost").get("/")
    assert response.status_code == 404
    assert b"No account here" in response.content


def test_a_host_outside_allowed_hosts_is_refused(cast):
    assert Client(HTTP_HOST="evil.example.net").get("/").status_code == 400


def test_the_staff_console_is_not_served_on_account_hosts(cast):
    assert client_for(cast.acme, cast.alice).get("/staff/").status_code == 404
    assert client_for(cast.acme, cast.alice).get("/admin/").status_code == 404


def test_dashboard_requests_have_only_the_account_schema_on_the_search_path(cast):
    client = Client(HTTP_HOST=cast.acme.host)  # a plain client leaves the connection as served
    with cast.acme:
        client.force_login(cast.alice)
    client.get("/")
    assert connection.search_path_set_schemas == [cast.acme.schema_name]


def test_a_control_plane_table_is_missing_in_an_account_schema_and_fails_loudly(cast):
    with cast.acme, pytest.raises(ProgrammingError):
        Domain.objects.count()


def test_account_schemas_hold_no_control_plane_tables(cast):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            [cast.acme.schema_name],
        )
        tables = {row[0] for row in cursor.fetchall()}
    assert "accounts_user" in tables
    assert "django_session" in tables
    assert not {"accounts_account", "accounts_domain", "django_admin_log"} & tables


def test_no_foreign_key_leaves_an_account_schema(cast):
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT count(*) FROM pg_constraint c
            JOIN pg_class src ON src.oid = c.conrelid
            JOIN pg_class dst ON dst.oid = c.confrelid
            WHERE c.contype = 'f'
              AND src.relnamespace = %s::regnamespace
              AND dst.relnamespace <> src.relnamespace
            """,
            [cast.acme.schema_name],
        )
        assert cursor.fetchone()[0] == 0
