"""Moving an account between two real PostgreSQL servers, with ingestion running."""

import json
import threading
import time

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection

from accounts.models import Account, AccountMove
from accounts.moving import MoveError, cleanup_move, move_account
from accounts.provisioning import server_url
from tests.conftest import client_for
from tests.ingest.conftest import api_client, drain, send


def schemas_on(server: str, prefix: str) -> set[str]:
    with psycopg.connect(server_url(server), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE %s", [prefix + "%"]
        ).fetchall()
    return {row[0] for row in rows}


def event_names(account: Account) -> list[str]:
    from segments.models import Event

    account = Account.objects.get(pk=account.pk)
    with account:
        return sorted(Event.objects.values_list("name", flat=True))


def track(key, name: str) -> int:
    response = send(api_client(key), "post", "/api/v1/customers/p1/events", {"name": name})
    return response.status_code


def test_an_account_moves_with_its_data_and_its_drain_follows(
    two_servers, committed_account, committed_key, spool, django_db_blocker
):
    account = committed_account
    with django_db_blocker.unblock():
        assert track(committed_key, "before") == 200
        drain(spool)
        assert track(committed_key, "spooled-before-the-move") == 200

        move = move_account(account, "second")

        assert move.phase == AccountMove.Phase.DONE, move.error
        assert move.write_pause_seconds is not None and move.write_pause_seconds > 0
        assert Account.objects.get(pk=account.pk).server == "second"
        assert schemas_on("second", account.schema_name) == {account.schema_name}
        # The old copy stays, renamed, until cleanup.
        assert schemas_on("default", account.schema_name) == {move.old_schema}

        assert track(committed_key, "after") == 200
        drain(spool)
        assert event_names(account) == ["after", "before", "spooled-before-the-move"]
        moved = Account.objects.get(pk=account.pk)
        with moved:
            assert connection.server == "second"

        cleanup_move(move)
        assert schemas_on("default", account.schema_name) == set()
        assert AccountMove.objects.get(pk=move.pk).phase == AccountMove.Phase.CLEANED


def test_the_dashboard_reads_the_moved_account_from_its_new_server(
    two_servers, committed_account, django_db_blocker
):
    with django_db_blocker.unblock():
        move_account(committed_account, "second")
        account = Account.objects.get(pk=committed_account.pk)
        with account:
            from accounts.models import User

            owner = User.objects.get(email=f"owner@{account.slug}.example")
            from django.utils import timezone

            from segments.models import Person

            now = timezone.now()
            Person.objects.create(email="only@second.example", created_at=now, updated_at=now)
        response = client_for(account, owner).get("/people/")
        connection.set_schema_to_public()
    assert response.status_code == 200
    assert "only@second.example" in response.content.decode()


def test_no_acknowledged_event_is_lost_when_moving_under_a_steady_stream(
    two_servers, committed_account, committed_key, spool, django_db_blocker
):
    """Requests keep coming and a drain keeps running in threads while the move runs."""
    acknowledged: list[tuple[float, str]] = []
    stop = threading.Event()

    def ingest() -> None:
        number = 0
        with django_db_blocker.unblock():
            try:
                while not stop.is_set():
                    number += 1
                    if track(committed_key, f"e{number}") == 200:
                        acknowledged.append((time.monotonic(), f"e{number}"))
                    time.sleep(0.005)
            finally:
                connection.close()

    def keep_draining() -> None:
        with django_db_blocker.unblock():
            try:
                while not stop.is_set():
                    drain(spool)
                    time.sleep(0.01)
            finally:
                connection.close()

    def wait_for(count: int) -> None:
        deadline = time.monotonic() + 30
        while len(acknowledged) < count and time.monotonic() < deadline:
            time.sleep(0.05)

    with django_db_blocker.unblock():
        threads = [threading.Thread(target=ingest), threading.Thread(target=keep_draining)]
        for thread in threads:
            thread.start()
        try:
            wait_for(10)
            started = time.monotonic()
            move = move_account(committed_account, "second")
            finished = time.monotonic()
            wait_for(len(acknowledged) + 10)
        finally:
            stop.set()
            for thread in threads:
                thread.join()
        drain(spool)
        assert move.phase == AccountMove.Phase.DONE, move.error
        stored = event_names(committed_account)
    during = [name for at, name in acknowledged if started < at < finished]
    assert during, "no request was acknowledged while the move ran"
    # Every acknowledged event, exactly once, on the new server.
    assert stored == sorted(name for _, name in acknowledged)


def test_a_failed_copy_leaves_the_account_where_it_was_with_its_drain_running(
    two_servers, committed_account, committed_key, spool, settings, django_db_blocker
):
    settings.DATA_SERVERS = {
        **settings.DATA_SERVERS,
        "nowhere": {**settings.DATA_SERVERS["second"], "HOST": "/nonexistent", "PORT": "1"},
    }
    with django_db_blocker.unblock():
        move = move_account(committed_account, "nowhere")
        assert move.phase == AccountMove.Phase.FAILED
        assert "nowhere" not in move.error or move.error
        account = Account.objects.get(pk=committed_account.pk)
        assert (account.server, account.state) == ("default", Account.State.ACTIVE)
        assert track(committed_key, "still-drained") == 200
        drain(spool)
        assert event_names(account) == ["still-drained"]


def test_it_refuses_an_unknown_server_and_the_current_one(two_servers, cast):
    with pytest.raises(MoveError, match="not a data server"):
        move_account(cast.acme, "atlantis")
    with pytest.raises(MoveError, match="already lives on default"):
        move_account(cast.acme, "default")


def test_the_command_moves_and_prints_json(
    two_servers, committed_account, django_db_blocker, capsys
):
    with django_db_blocker.unblock():
        call_command("move_account", committed_account.slug, "--to", "second", "--json")
        result = json.loads(capsys.readouterr().out)
        assert result["phase"] == "done"
        assert result["to"] == "second"
        assert result["write_pause_seconds"] > 0
        call_command("cleanup_move", str(result["move"]))
        assert schemas_on("default", committed_account.schema_name) == set()
