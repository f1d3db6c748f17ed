"""One account's export and import, and deletion after the grace period."""

from datetime import timedelta

import psycopg
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone

from accounts.lifecycle import purge_due_accounts
from accounts.models import Account, User
from accounts.provisioning import server_url
from tests.accounts.conftest import remove_everywhere


def add_person(account: Account, email: str) -> None:
    from segments.models import Person

    now = timezone.now()
    with account:
        Person.objects.create(email=email, attributes={"note": account.schema_name},
                              created_at=now, updated_at=now)  # fmt: skip
    connection.set_schema_to_public()


def test_an_export_imports_as_a_new_account_with_the_same_data(
    committed_account, django_db_blocker, tmp_path
):
    from segments.models import Person

    path = tmp_path / "export.sql.gz"
    with django_db_blocker.unblock():
        # Customer data that contains the schema's name must come back unchanged.
        add_person(committed_account, "kept@example.com")
        call_command("export_account", committed_account.slug, "--output", str(path))
        call_command("import_account", str(path), "--slug", "restored", "--name", "Restored")
        restored = Account.objects.get(slug="restored")
        try:
            assert restored.schema_name != committed_account.schema_name
            assert restored.state == Account.State.ACTIVE
            with restored:
                person = Person.objects.get()
                assert person.email == "kept@example.com"
                assert person.attributes == {"note": committed_account.schema_name}
                assert User.objects.get().email == f"owner@{committed_account.slug}.example"
            connection.set_schema_to_public()
            # The original is untouched.
            with committed_account:
                assert Person.objects.count() == 1
            connection.set_schema_to_public()
        finally:
            remove_everywhere(restored)


def test_an_import_refuses_a_taken_slug_and_a_file_that_is_not_an_export(
    committed_account, django_db_blocker, tmp_path
):
    junk = tmp_path / "junk.sql.gz"
    import gzip

    junk.write_bytes(gzip.compress(b"SELECT 1;\n"))
    with django_db_blocker.unblock():
        with pytest.raises(CommandError, match="not a Ferry account export"):
            call_command("import_account", str(junk), "--slug", "fresh", "--name", "Fresh")
        with pytest.raises(CommandError, match="slug"):
            call_command("import_account", str(junk), "--slug", committed_account.slug,
                         "--name", "Again")  # fmt: skip
        assert not Account.objects.filter(slug="fresh").exists()


def test_deletion_is_confirmed_then_purged_only_after_the_grace_period(
    committed_account, django_db_blocker
):
    slug, schema = committed_account.slug, committed_account.schema_name
    with django_db_blocker.unblock():
        with pytest.raises(CommandError, match="Type the account's slug"):
            call_command("delete_account", slug, "--confirm", "nope")
        call_command("delete_account", slug, "--confirm", slug)
        account = Account.objects.get(slug=slug)
        assert account.state == Account.State.DELETING

        assert purge_due_accounts() == []  # still in its grace period
        assert purge_due_accounts(now=account.delete_after + timedelta(seconds=1)) == [slug]
        assert not Account.objects.filter(slug=slug).exists()
        with psycopg.connect(server_url("default"), autocommit=True) as conn:
            left = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [schema])
            assert left.fetchone() is None
