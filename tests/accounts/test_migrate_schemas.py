"""Migrating every account schema: current ones skipped, the rest replayed, stop on failure."""

import psycopg
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from accounts import migrating
from accounts.models import Account
from accounts.provisioning import server_url

LAST = ("segments", "0005_person_attributes_pending_list")


@pytest.fixture(autouse=True)
def _empty_spool(spool):
    """The run yields to ingestion (the governor reads the spool): start with none waiting."""
    return spool


def unapply_last_segments_migration(account: Account) -> None:
    """Take the schema back to segments 0004 with Django's own executor."""
    call_command(
        "migrate_schemas", "segments", "0004_segments", schema_name=account.schema_name,
        executor="standard", verbosity=0, interactive=False,
    )  # fmt: skip
    connection.set_schema_to_public()


def index_options(account: Account) -> list[str] | None:
    with psycopg.connect(server_url(account.server), autocommit=True) as conn:
        row = conn.execute(
            "SELECT c.reloptions FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = 'person_attributes'",
            [account.schema_name],
        ).fetchone()
    return row[0] if row else None


def recorded(account: Account) -> bool:
    with psycopg.connect(server_url(account.server), autocommit=True) as conn:
        return bool(
            conn.execute(
                f'SELECT 1 FROM "{account.schema_name}".django_migrations '
                "WHERE app = %s AND name = %s",
                list(LAST),
            ).fetchone()
        )


def test_a_run_over_current_schemas_changes_nothing(make_committed_account, django_db_blocker):
    make_committed_account()
    with django_db_blocker.unblock():
        report = migrating.migrate_accounts()
    assert report.ok
    assert report.total >= 3  # acme, globex, the new one (and the template)
    assert report.current == report.total
    assert report.migrated == 0


def test_a_stale_schema_gets_the_missing_migration_and_the_others_are_skipped(
    make_committed_account, django_db_blocker
):
    account = make_committed_account()
    with django_db_blocker.unblock():
        unapply_last_segments_migration(account)
        assert not recorded(account)
        assert index_options(account) is None  # 0004's index had no options

        report = migrating.migrate_accounts()

        assert report.ok, report.error
        assert (report.migrated, report.current) == (1, report.total - 1)
        assert recorded(account)
        assert sorted(index_options(account)) == ["fastupdate=on", "gin_pending_list_limit=65536"]


def test_an_interrupted_run_resumes_where_it_stopped(make_committed_account, django_db_blocker):
    first, second = make_committed_account(), make_committed_account()
    with django_db_blocker.unblock():
        for account in (first, second):
            unapply_last_segments_migration(account)
        done: list[int] = []

        report = migrating.migrate_accounts(
            parallel=1, progress=lambda n, total, _: done.append(n), stop=lambda: bool(done)
        )
        assert (report.migrated, report.ok) == (1, True)
        assert [recorded(first), recorded(second)].count(True) == 1

        again = migrating.migrate_accounts()
        assert again.migrated == 1
        assert recorded(first) and recorded(second)


def test_a_failing_schema_stops_the_run_with_a_report_naming_it(
    make_committed_account, django_db_blocker
):
    account = make_committed_account()
    with django_db_blocker.unblock():
        unapply_last_segments_migration(account)
        with psycopg.connect(server_url("default"), autocommit=True) as conn:
            # Something in the way of the migration's index, as a hand-made fix might leave.
            conn.execute(f'DROP INDEX "{account.schema_name}".person_attributes')
            conn.execute(f'CREATE TABLE "{account.schema_name}".person_attributes (id int)')

        with pytest.raises(CommandError) as raised:
            call_command("migrate_schemas", tenant=True, verbosity=0)

        message = str(raised.value)
        assert account.slug in message and account.schema_name in message
        assert "segments.0005_person_attributes_pending_list" in message
        assert "run the command again to resume" in message
        assert not recorded(account)


def test_the_command_shows_a_progress_bar_and_a_summary(
    make_committed_account, django_db_blocker, capsys
):
    account = make_committed_account()
    with django_db_blocker.unblock():
        unapply_last_segments_migration(account)
        capsys.readouterr()
        call_command("migrate_schemas", tenant=True, verbosity=1)
    out, err = capsys.readouterr()
    assert "1/1 schemas" in err
    assert "already current, 1 migrated" in out


def test_the_run_waits_while_the_drain_is_behind(
    make_committed_account, django_db_blocker, spool, settings
):
    account = make_committed_account()
    settings.GOVERNOR_MAX_BACKLOG = 5
    spool.append(str(account.pk), ['{"type": "event"}'] * 10)
    pauses: list[str] = []
    with django_db_blocker.unblock():
        unapply_last_segments_migration(account)
        report = migrating.migrate_accounts(on_pause=pauses.append, stop=lambda: len(pauses) > 2)
        assert report.migrated == 0 and not recorded(account)
        assert pauses and "10" in pauses[0]


def test_writes_keep_working_while_their_schemas_are_migrated(
    make_committed_account, django_db_blocker
):
    """The short form of the benchmark's run under traffic: people are written in every
    schema while each gets its migration; no write fails and none is lost."""
    import threading

    from django.utils import timezone

    from segments.models import Person

    accounts = [make_committed_account() for _ in range(3)]
    errors: list[str] = []
    written = {account.pk: 0 for account in accounts}
    stop = threading.Event()

    def write() -> None:
        with django_db_blocker.unblock():
            try:
                number = 0
                while not stop.is_set():
                    for account in accounts:
                        number += 1
                        now = timezone.now()
                        try:
                            with account:
                                Person.objects.create(
                                    email=f"p{number}@example.com", created_at=now, updated_at=now
                                )
                            written[account.pk] += 1
                        except Exception as error:
                            errors.append(repr(error))
            finally:
                connection.set_schema_to_public()
                connection.close()

    with django_db_blocker.unblock():
        for account in accounts:
            unapply_last_segments_migration(account)
        writer = threading.Thread(target=write)
        writer.start()
        try:
            report = migrating.migrate_accounts(parallel=2)
        finally:
            stop.set()
            writer.join()
        assert report.ok and report.migrated == 3, report.error
        for account in accounts:
            assert recorded(account)
            with account:
                assert Person.objects.count() == written[account.pk]
            connection.set_schema_to_public()
    assert not errors
    assert all(written.values())
