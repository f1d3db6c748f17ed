import pytest
from django.db import connection

pytestmark = pytest.mark.django_db


def reloptions(table: str) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.reloptions FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relname = %s",
            [table],
        )
        return set(cursor.fetchone()[0] or [])


def test_account_tables_carry_autovacuum_settings_for_their_write_pattern(cast):
    with cast.acme:
        assert {
            "autovacuum_vacuum_insert_scale_factor=0.02",
            "autovacuum_vacuum_scale_factor=0.02",
        } <= reloptions("segments_event")
        assert "fillfactor=80" in reloptions("segments_activitysummary")
        assert "fillfactor=90" in reloptions("segments_person")
        assert "fillfactor=90" in reloptions("messaging_delivery")


def test_a_new_account_gets_them_too(cast):
    from accounts import actions

    initech = actions.create_account(
        slug="initech", name="Initech", owner_email="bill@initech.example", owner_password="x" * 20
    )
    with initech:
        assert "autovacuum_vacuum_insert_scale_factor=0.02" in reloptions("segments_event")
