"""The staff storage view measures a moved account on the server it now lives on."""

from accounts.moving import move_account
from maintenance.storage import storage_report
from tests.accounts.conftest import (  # noqa: F401
    committed_account,
    make_committed_account,
    second_server_url,
    two_servers,
)


def test_a_moved_account_is_measured_on_its_new_server(
    two_servers,  # noqa: F811
    committed_account,  # noqa: F811
    spool,
    django_db_blocker,
):
    with django_db_blocker.unblock():
        move = move_account(committed_account, "second")
        assert move.phase == "done", move.error
        report = storage_report(fresh=True)
    [moved] = [row for row in report.accounts if row.slug == committed_account.slug]
    assert moved.server == "second"
    assert moved.tables > 10 and moved.total_bytes > 0
    assert {row.server for row in report.accounts if row.slug in ("acme", "globex")} == {"default"}
