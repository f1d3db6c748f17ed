"""Staff console: moving an account and watching it, export, deletion with a grace period."""

import gzip
import time

import pytest
from django.db import connection

from accounts.models import Account, AccountMove, AuditEntry
from tests.conftest import client_for


def staff(cast):
    return client_for(None, cast.stella)


@pytest.mark.django_db
def test_outsiders_cannot_reach_the_operations(cast):
    urls = [
        "/staff/accounts/acme/move/",
        "/staff/accounts/acme/moves/1/cleanup/",
        "/staff/accounts/acme/export/",
        "/staff/accounts/acme/delete/",
    ]
    for url in urls:
        # A control-plane user who is not staff, a teammate on the account's own host, and
        # the account's owner on another account's host: nothing happens for any of them.
        assert client_for(None, cast.paul).post(url, {"confirmation": "acme"}).status_code == 403
        assert client_for(cast.acme, cast.alice).post(url).status_code == 404
        assert client_for(cast.globex, cast.charlie).post(url).status_code == 404
    connection.set_schema_to_public()
    acme = Account.objects.get(slug="acme")
    assert (acme.state, acme.server, acme.moves.count()) == ("active", "default", 0)


@pytest.mark.django_db
def test_deletion_needs_the_slug_typed_and_can_be_cancelled(cast):
    wrong = staff(cast).post("/staff/accounts/acme/delete/", {"confirmation": "globex"})
    assert wrong.status_code == 302
    assert Account.objects.get(slug="acme").state == "active"

    staff(cast).post("/staff/accounts/acme/delete/", {"confirmation": "acme"})
    acme = Account.objects.get(slug="acme")
    assert acme.state == "deleting" and acme.delete_after is not None
    # The dashboard closes with the date; the schema is still there.
    closed = client_for(acme, cast.alice).get("/people/")
    assert closed.status_code == 410
    assert b"scheduled for deletion" in closed.content
    assert b"acme" in staff(cast).get("/staff/accounts/acme/").content

    staff(cast).post("/staff/accounts/acme/delete/", {"cancel": "1"})
    acme = Account.objects.get(slug="acme")
    assert (acme.state, acme.delete_after) == ("active", None)
    assert client_for(acme, cast.alice).get("/people/").status_code == 200


@pytest.mark.django_db
def test_the_export_downloads_the_account_schema_and_is_audited(cast):
    response = staff(cast).post("/staff/accounts/acme/export/")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/gzip"
    body = gzip.decompress(b"".join(response.streaming_content)).decode()
    connection.set_schema_to_public()
    assert body.startswith("-- ferry-account-export ")
    assert f"CREATE TABLE {cast.acme.schema_name}.segments_person" in body
    assert cast.globex.schema_name not in body
    with cast.acme:
        assert AuditEntry.objects.filter(action="account.exported").count() == 1


def test_staff_start_a_move_and_watch_it_finish(
    two_servers, committed_account, django_db_blocker, django_db_setup
):
    from accounts.models import User

    with django_db_blocker.unblock():
        stella = User.objects.get(email="stella@ferry.test")
        client = client_for(None, stella)
        page = client.get(f"/staff/accounts/{committed_account.slug}/")
        assert b"Start the move" in page.content and b'value="second"' in page.content

        started = client.post(
            f"/staff/accounts/{committed_account.slug}/move/", {"target": "second"}
        )
        assert started.status_code == 302
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            move = AccountMove.objects.get(account=committed_account)
            if not move.is_running:
                break
            fragment = client.get(
                f"/staff/accounts/{committed_account.slug}/?part=moves", HTTP_HX_REQUEST="true"
            )
            assert b'id="moves"' in fragment.content and b"<html" not in fragment.content
            time.sleep(0.3)
        assert move.phase == AccountMove.Phase.DONE, move.error
        assert Account.objects.get(pk=committed_account.pk).server == "second"
        done = client.get(f"/staff/accounts/{committed_account.slug}/?part=moves",
                          HTTP_HX_REQUEST="true")  # fmt: skip
        assert b"Done" in done.content and b"every 1s" not in done.content

        client.post(f"/staff/accounts/{committed_account.slug}/moves/{move.pk}/cleanup/")
        assert AccountMove.objects.get(pk=move.pk).phase == AccountMove.Phase.CLEANED
