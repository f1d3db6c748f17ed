"""The staff maintenance console: slots and pace, retention ceilings, storage and bloat."""

import pytest

from accounts.models import AuditEntry
from maintenance import governor
from maintenance.models import MaintenanceRun, RetentionPolicy
from segments.models import Person
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def test_staff_see_running_and_waiting_jobs_with_their_pace(cast, spool, settings):
    settings.GOVERNOR_MAX_BACKLOG = 2
    spool.append(str(cast.acme.pk), ["{}"] * 5)
    with governor.slot("retention", cast.acme) as held:
        held.rows_done = 1234
        held._save("paused", "drain behind: 5 items waiting (limit 2)", force=True)
        MaintenanceRun.objects.create(kind="move_account", account_id=cast.globex.pk,
                                      account_label="globex", host="n", pid=1)  # fmt: skip
        page = client_for(None, cast.stella).get("/staff/maintenance/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "Paused for live traffic" in text and "drain behind: 5 items waiting" in text
    assert "1234" in text and "Waiting for a slot" in text and "move_account" in text
    assert "Pausing maintenance: drain behind: 5 items waiting (limit 2)" in text


def test_staff_set_a_ceiling_and_the_account_sees_it_in_its_audit_log(cast, settings, spool):
    settings.RETENTION_DEFAULT_DAYS = {"events": 365, "deliveries": 180, "dead_letters": 30}
    RetentionPolicy.objects.create(account=cast.acme, events_days=200)
    client = client_for(None, cast.stella)
    response = client.post(
        "/staff/maintenance/accounts/acme/retention/",
        {"events_limit_days": "730", "deliveries_limit_days": "30", "dead_letters_limit_days": ""},
    )
    assert response.status_code == 302
    policy = RetentionPolicy.objects.get(account=cast.acme)
    assert (policy.days("events"), policy.days("deliveries"), policy.days("dead_letters")) == (
        200, 30, 30,
    )  # fmt: skip
    with cast.acme:
        entry = AuditEntry.objects.get()
    assert (entry.actor, entry.action) == ("stella@ferry.test", "retention.limits_changed")
    page = client.get("/staff/maintenance/accounts/acme/retention/")
    assert b'id="applied-events">200 days' in page.content
    bad = client.post("/staff/maintenance/accounts/acme/retention/", {"events_limit_days": "x"})
    assert bad.status_code == 200 and b"Enter a whole number." in bad.content


def test_staff_see_the_largest_accounts_and_the_most_dead_rows(cast, spool):
    with cast.acme:
        Person.objects.bulk_create(
            Person(
                customer_id=str(n), created_at="2026-01-01T00:00Z", updated_at="2026-01-01T00:00Z"
            )
            for n in range(3000)
        )
    page = client_for(None, cast.stella).get("/staff/maintenance/storage/?fresh=1")
    assert page.status_code == 200
    text = " ".join(page.content.decode().split())
    largest = text[text.index('id="largest"') : text.index('id="most-dead"')]
    # acme, with its new rows on disk, first; both on the default server. (Dead-row counts
    # come from PostgreSQL's statistics, which only count committed work, so this test's
    # rolled-back transaction cannot make any.)
    assert largest.index("<td>acme</td><td>default</td>") < largest.index(
        "<td>globex</td><td>default</td>"
    )
    assert 'id="most-dead"' in text and "<td>acme</td>" in text[text.index('id="most-dead"') :]


def test_only_staff_reach_the_maintenance_pages(cast, spool):
    urls = [
        "/staff/maintenance/",
        "/staff/maintenance/storage/",
        "/staff/maintenance/accounts/acme/retention/",
    ]
    for url in urls:
        assert client_for(None, cast.paul).get(url).status_code == 403
        assert client_for(None).get(url).status_code == 302
        # Account teammates on their own host: these paths do not exist there.
        assert client_for(cast.acme, cast.alice).get(url).status_code == 404
    denied = client_for(None, cast.paul).post(
        "/staff/maintenance/accounts/acme/retention/", {"events_limit_days": "1"}
    )
    assert denied.status_code == 403
    assert (
        client_for(None, cast.stella).get("/staff/maintenance/accounts/nope/retention/").status_code
        == 404
    )
    assert not RetentionPolicy.objects.exists()
