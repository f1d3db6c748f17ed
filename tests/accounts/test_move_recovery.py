"""A move whose process is killed (SIGKILL, mid-copy) is recovered by the next run or --abort.

The move runs in its own process (as staff start it), between two real PostgreSQL servers,
over an account big enough that the copy takes seconds; the test kills it while it copies.
"""

import json
import os
import signal
import subprocess
import sys
import time

import psycopg
import pytest
from django.conf import settings
from django.core.management import call_command

from accounts.models import Account, AccountMove
from accounts.moving import MoveError, abort_move, move_account, mover_lock
from accounts.provisioning import BASE_DIR, server_url
from bench.generate_account import generate
from tests.accounts.test_move_account import event_names, schemas_on, track
from tests.ingest.conftest import drain

PEOPLE, EVENTS = 60_000, 200_000


def people_on(server: str, schema: str) -> int:
    with psycopg.connect(server_url(server), autocommit=True) as conn:
        return conn.execute(f'SELECT count(*) FROM "{schema}".segments_person').fetchone()[0]


def paused_accounts(spool) -> set[str]:
    return {row[0] for row in spool.db.execute("SELECT account FROM paused").fetchall()}


def kill_while_copying(account: Account, target: str) -> AccountMove:
    """Start `move_account` in its own process, SIGKILL it mid-copy; return its move."""
    servers = ",".join(f"{name}={server_url(name)}" for name in settings.DATA_SERVERS
                       if name != "default")  # fmt: skip
    env = {**os.environ, "DATABASE_URL": server_url("default"), "FERRY_DATA_SERVERS": servers,
           "INGEST_SPOOL_PATH": str(settings.INGEST_SPOOL_PATH)}  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "manage.py", "move_account", account.slug, "--to", target,
         "--verbosity", "0"],
        cwd=BASE_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 180
    try:
        while time.monotonic() < deadline:
            move = AccountMove.objects.filter(account=account).first()
            if move and move.phase == AccountMove.Phase.COPYING and move.tables_done >= 1:
                break
            assert process.poll() is None, f"the move ended first: {process.stderr.read()}"
            time.sleep(0.02)
        else:
            pytest.fail("the move never started copying")
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    time.sleep(0.5)  # pg_dump and pg_restore die with it (PR_SET_PDEATHSIG)
    move.refresh_from_db()
    assert move.phase == AccountMove.Phase.COPYING  # killed before it could record anything
    return move


@pytest.fixture
def big_account(two_servers, committed_account, django_db_blocker) -> Account:
    with django_db_blocker.unblock():
        generate(server_url("default"), committed_account.schema_name, PEOPLE, EVENTS)
    return committed_account


def test_a_killed_move_leaves_the_account_moving_until_recovered(
    big_account, committed_key, spool, django_db_blocker
):
    with django_db_blocker.unblock():
        killed = kill_while_copying(big_account, "second")

        account = Account.objects.get(pk=big_account.pk)
        assert (account.server, account.state) == ("default", Account.State.MOVING)
        assert str(account.pk) in paused_accounts(spool)
        assert schemas_on("second", account.schema_name) == {account.schema_name}  # partial
        # Ingestion keeps accepting meanwhile; the items wait in the spool.
        assert track(committed_key, "while-stuck") == 200

        move = move_account(account, "second")

        assert move.phase == AccountMove.Phase.DONE, move.error
        killed.refresh_from_db()
        assert killed.phase == AccountMove.Phase.FAILED
        assert "interrupted while copying the schema; rolled back" in killed.detail
        account = Account.objects.get(pk=big_account.pk)
        assert (account.server, account.state) == ("second", Account.State.ACTIVE)
        assert paused_accounts(spool) == set()
        assert people_on("second", account.schema_name) == PEOPLE
        assert schemas_on("default", account.schema_name) == {move.old_schema}
        drain(spool)
        assert "while-stuck" in event_names(account)


def test_abort_rolls_a_killed_move_back(big_account, committed_key, spool, django_db_blocker,
                                        capsys):  # fmt: skip
    with django_db_blocker.unblock():
        killed = kill_while_copying(big_account, "second")
        assert track(committed_key, "while-stuck") == 200

        call_command("move_account", big_account.slug, "--abort", "--json")

        result = json.loads(capsys.readouterr().out)
        assert result["server"] == "default" and result["state"] == "active"
        assert [m["move"] for m in result["moves"]] == [killed.pk]
        killed.refresh_from_db()
        assert killed.phase == AccountMove.Phase.FAILED
        account = Account.objects.get(pk=big_account.pk)
        assert (account.server, account.state) == ("default", Account.State.ACTIVE)
        assert schemas_on("second", account.schema_name) == set()  # partial copy dropped
        assert schemas_on("default", account.schema_name) == {account.schema_name}
        assert people_on("default", account.schema_name) == PEOPLE
        assert paused_accounts(spool) == set()
        drain(spool)
        assert "while-stuck" in event_names(account)


def test_a_move_that_died_after_switching_is_finished_not_undone(
    two_servers, committed_account, spool, django_db_blocker
):
    with django_db_blocker.unblock():
        move = move_account(committed_account, "second")
        assert move.phase == AccountMove.Phase.DONE
        # As if the process died right after switching placement, before resuming the drain.
        AccountMove.objects.filter(pk=move.pk).update(phase=AccountMove.Phase.VERIFYING)
        Account.objects.filter(pk=committed_account.pk).update(state=Account.State.MOVING)
        spool.pause(str(committed_account.pk))

        (recovered,) = abort_move(committed_account)

        assert recovered.phase == AccountMove.Phase.DONE
        assert recovered.old_schema == move.old_schema
        account = Account.objects.get(pk=committed_account.pk)
        assert (account.server, account.state) == ("second", Account.State.ACTIVE)
        assert paused_accounts(spool) == set()


def test_a_second_run_refuses_while_the_first_is_alive(
    two_servers, committed_account, django_db_blocker
):
    with django_db_blocker.unblock():
        with mover_lock(committed_account):
            with pytest.raises(MoveError, match="being moved by a running process"):
                move_account(committed_account, "second")
            with pytest.raises(MoveError, match="being moved by a running process"):
                abort_move(committed_account)
        assert Account.objects.get(pk=committed_account.pk).state == Account.State.ACTIVE


def test_staff_starting_a_move_recover_one_whose_process_died(
    two_servers, committed_account, spool, django_db_blocker
):
    from accounts.models import User
    from tests.conftest import client_for

    account = committed_account
    with django_db_blocker.unblock():
        # What a move killed mid-copy leaves behind (the kill itself is tested above).
        stuck = AccountMove.objects.create(account=account, source="default", target="second",
                                           phase=AccountMove.Phase.COPYING)  # fmt: skip
        Account.objects.filter(pk=account.pk).update(state=Account.State.MOVING)
        spool.pause(str(account.pk))
        with psycopg.connect(server_url("second"), autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{account.schema_name}"')
        staff = client_for(None, User.objects.get(email="stella@ferry.test"))

        page = staff.post(f"/staff/accounts/{account.slug}/move/", {"target": "second"},
                          follow=True).content.decode()  # fmt: skip

        assert "An interrupted move was recovered" in page
        stuck.refresh_from_db()
        assert stuck.phase == AccountMove.Phase.FAILED
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            move = AccountMove.objects.filter(account=account).exclude(pk=stuck.pk).first()
            if move and not move.is_running:
                break
            time.sleep(0.2)
        assert move.phase == AccountMove.Phase.DONE, move.error
        account = Account.objects.get(pk=account.pk)
        assert (account.server, account.state) == ("second", Account.State.ACTIVE)
        assert paused_accounts(spool) == set()
