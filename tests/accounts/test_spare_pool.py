"""The warm pool of spare schemas: claimed by creations, refilled, migrated, reachable by none.

These tests commit (claims rename schemas for real, threads need their own connections), so
every spare and account they leave is dropped afterwards.
"""

import threading
from collections.abc import Callable, Iterator
from io import StringIO

import psycopg
import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection
from django.test import Client

from accounts import actions, migrating, pool
from accounts.models import Account, Domain, SpareSchema, User
from accounts.provisioning import fingerprint, server_url
from maintenance.models import MaintenanceRun
from tests.accounts.conftest import remove_everywhere
from tests.conftest import PASSWORD


@pytest.fixture(autouse=True)
def _empty_spool(spool):
    """The refill and the runner yield to ingestion (the governor reads the spool)."""
    return spool


@pytest.fixture
def spares(django_db_setup, django_db_blocker) -> Iterator[Callable[[int], list[str]]]:
    """Fill the pool to n spares (committed); the pool and its accounts go afterwards."""
    slugs_before = set()
    with django_db_blocker.unblock():
        slugs_before = set(Account.objects.values_list("slug", flat=True))

    def fill(n: int) -> list[str]:
        with django_db_blocker.unblock():
            pool.refill(n)
            return pool.spare_schemas()

    yield fill
    with django_db_blocker.unblock():
        connection.close()
        connection.set_schema_to_public()
        with psycopg.connect(server_url("default"), autocommit=True) as conn:
            for (schema,) in conn.execute(
                "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'spare\\_%'"
            ).fetchall():
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        SpareSchema.objects.all().delete()
        for account in Account.objects.exclude(slug__in=slugs_before):
            remove_everywhere(account)


def schemas_present(names: list[str]) -> set[str]:
    with psycopg.connect(server_url("default"), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname = ANY(%s)", [names]
        ).fetchall()
    return {row[0] for row in rows}


def create(slug: str, **options) -> Account:
    return actions.create_account(
        slug=slug, name=slug.title(), owner_email=f"owner@{slug}.example",
        owner_password=PASSWORD, **options,
    )  # fmt: skip


def test_creating_an_account_claims_a_spare(spares, django_db_blocker):
    before = spares(2)
    assert len(before) == 2 and all(name.startswith("spare_") for name in before)
    with django_db_blocker.unblock():
        told = []
        account = create("claimer", on_provisioning=told.append)

        assert told == []  # no provisioning state: a spare was ready
        assert account.state == Account.State.ACTIVE
        left = pool.spare_schemas()
        assert len(left) == 1 and left[0] in before
        claimed = (set(before) - set(left)).pop()
        # The spare was renamed, not copied: its old name is gone, the account's is there.
        assert schemas_present([claimed, account.schema_name]) == {account.schema_name}
        with Account.objects.get(slug="claimer"):
            assert User.objects.get().check_password(PASSWORD)
        response = Client(HTTP_HOST=account.host).post(
            "/login/", {"username": "owner@claimer.example", "password": PASSWORD}
        )
        assert response.status_code == 302


def test_with_no_spare_the_account_is_provisioning_while_built_from_the_template(
    spares, django_db_blocker
):
    assert spares(0) == []
    seen_by_others: list[str] = []

    def look_from_another_connection(account: Account) -> None:
        with psycopg.connect(server_url("default"), autocommit=True) as conn:
            seen_by_others.append(
                conn.execute(
                    "SELECT state FROM public.accounts_account WHERE id = %s", [account.pk]
                ).fetchone()[0]
            )

    with django_db_blocker.unblock():
        account = create("builder", on_provisioning=look_from_another_connection)
        assert seen_by_others == ["provisioning"]
        assert Account.objects.get(pk=account.pk).state == Account.State.ACTIVE
        with Account.objects.get(pk=account.pk):
            assert User.objects.get().email == "owner@builder.example"


def test_the_create_command_says_when_it_provisions_without_a_spare(spares, django_db_blocker):
    spares(0)
    out, err = StringIO(), StringIO()
    with django_db_blocker.unblock():
        call_command(
            "create_account", "slowpoke", "--name", "Slowpoke", "--owner-email",
            "o@slowpoke.example", "--owner-password", PASSWORD, stdout=out, stderr=err,
        )  # fmt: skip
    assert "Provisioning" in err.getvalue()
    assert "no spare schema was ready" in err.getvalue()
    assert "Created slowpoke" in out.getvalue()


def test_a_failed_creation_leaves_its_spare_in_the_pool(spares, django_db_blocker):
    before = spares(1)
    with django_db_blocker.unblock():
        with pytest.raises(IntegrityError):
            create("acme")  # taken: the Account row's insert fails after the claim
        assert pool.spare_schemas() == before
        assert schemas_present(before) == set(before)


def test_a_spare_locked_by_one_creation_is_skipped_by_another(spares, django_db_blocker):
    spares(2)
    with django_db_blocker.unblock():
        first, second = SpareSchema.objects.order_by("pk").values_list("schema_name", flat=True)
    with psycopg.connect(server_url("default")) as other:
        # Another creation's transaction holds the oldest spare.
        other.execute(
            "SELECT 1 FROM public.accounts_spareschema WHERE schema_name = %s FOR UPDATE", [first]
        )
        with django_db_blocker.unblock():
            account = create("skipper")
            assert pool.spare_schemas() == [first]
            assert schemas_present([second]) == set()

            told = []
            create("fallback", on_provisioning=told.append)  # the only spare is locked
            assert len(told) == 1
            assert pool.spare_schemas() == [first]
        other.rollback()
    assert account.state == Account.State.ACTIVE


def test_concurrent_creations_never_claim_the_same_spare(spares, django_db_blocker):
    spares(4)
    created: list[Account] = []
    fell_back: list[str] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def create_one(number: int) -> None:
        try:
            start.wait()
            created.append(
                create(f"racer{number}", on_provisioning=lambda a: fell_back.append(a.slug))
            )
        except BaseException as error:  # reported below
            errors.append(error)
        finally:
            connection.close()

    with django_db_blocker.unblock():
        threads = [threading.Thread(target=create_one, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert fell_back == []
        schemas = {account.schema_name for account in created}
        assert len(schemas) == 4
        assert schemas_present(sorted(schemas)) == schemas
        assert pool.spare_schemas() == []


def test_a_spare_behind_the_code_is_not_claimed_until_the_runner_migrates_it(
    spares, django_db_blocker
):
    from tests.accounts.test_migrate_schemas import LAST

    (spare,) = spares(1)
    with django_db_blocker.unblock():
        # As after a deploy: the spare was built before the newest migration.
        call_command(
            "migrate_schemas", "segments", "0004_segments", schema_name=spare,
            executor="standard", verbosity=0, interactive=False,
        )  # fmt: skip
        connection.set_schema_to_public()
        SpareSchema.objects.update(fingerprint="0" * 64)

        told = []
        create("early", on_provisioning=told.append)
        assert len(told) == 1 and pool.spare_schemas() == [spare]

        report = migrating.migrate_accounts()

        assert report.ok, report.error
        assert report.migrated == 1
        assert SpareSchema.objects.get().fingerprint == fingerprint()
        with psycopg.connect(server_url("default"), autocommit=True) as conn:
            assert conn.execute(
                f'SELECT 1 FROM "{spare}".django_migrations WHERE app = %s AND name = %s',
                list(LAST),
            ).fetchone()
        account = create("late")
        assert pool.spare_schemas() == []
        assert schemas_present([spare, account.schema_name]) == {account.schema_name}


def test_the_refill_discards_spares_built_for_other_migrations(spares, django_db_blocker):
    (old,) = spares(1)
    with django_db_blocker.unblock():
        SpareSchema.objects.update(fingerprint="0" * 64)
        assert pool.refill(1) == 1
        (new,) = pool.spare_schemas()
        assert new != old
        assert schemas_present([old, new]) == {new}


def test_the_refill_worker_fills_the_pool_in_a_governor_slot(spares, django_db_blocker):
    spares(0)
    out = StringIO()
    with django_db_blocker.unblock():
        call_command("refill_spares", "--size", "2", stdout=out)
        assert pool.ready_count() == 2
        run = MaintenanceRun.objects.filter(kind="refill_spares").latest("pk")
        assert run.state == MaintenanceRun.State.DONE
    assert "Built 2 spare schemas; 2 ready." in out.getvalue()


def test_a_spare_is_reachable_from_no_host(spares, django_db_blocker):
    (spare,) = spares(1)
    with django_db_blocker.unblock():
        assert not Account.objects.filter(schema_name=spare).exists()
        assert not Domain.objects.filter(domain__contains=spare).exists()
        # Its name as a host is not even a valid host name; the nearest valid one is unknown.
        assert Client(HTTP_HOST=f"{spare}.localhost").get("/login/").status_code == 400
        client = Client(HTTP_HOST=f"{spare.replace('_', '-')}.localhost")
        assert client.get("/login/").status_code == 404
        assert client.post("/login/", {"username": "x@y.example", "password": "x"}
                           ).status_code == 404  # fmt: skip
        assert client.get("/").status_code == 404
        # No account's request puts it on the search path.
        acme = Account.objects.get(slug="acme")
        with acme:
            with connection.cursor() as cursor:
                cursor.execute("SHOW search_path")
                assert spare not in cursor.fetchone()[0]
        # And it holds nobody who could log in anywhere.
        with psycopg.connect(server_url("default"), autocommit=True) as conn:
            assert conn.execute(f'SELECT count(*) FROM "{spare}".accounts_user').fetchone() == (0,)


def test_staff_see_the_pool_and_a_provisioned_creation(spares, django_db_blocker, settings):
    from tests.conftest import client_for

    spares(1)
    with django_db_blocker.unblock():
        staff = client_for(None, User.objects.get(email="stella@ferry.test"))
        page = staff.get("/staff/").content.decode()
        assert f"1 of {settings.ACCOUNT_SPARE_POOL} spare schemas ready" in page
        form = {"slug": "viastaff", "name": "Via Staff", "owner_email": "o@viastaff.example",
                "owner_password": PASSWORD}  # fmt: skip
        assert "No spare schema was ready" not in staff.post("/staff/", form, follow=True
                                                             ).content.decode()  # fmt: skip
        form = {**form, "slug": "viastaff2", "owner_email": "o@viastaff2.example"}
        page = staff.post("/staff/", form, follow=True).content.decode()
        assert "No spare schema was ready" in page
        assert Account.objects.get(slug="viastaff2").state == Account.State.ACTIVE
