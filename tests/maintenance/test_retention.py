"""Retention cleanup: what goes, what stays, and that it stays inside one account."""

from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command

from accounts.models import Account
from ingest.models import DeadLetter
from maintenance import governor
from maintenance.models import MaintenanceRun, RetentionPolicy
from maintenance.retention import clean_account, clean_control_plane
from messaging.models import Delivery, DeliveryEvent
from segments.models import ActivitySummary, Event, EventDay, Person
from tests.segments.conftest import members, rule_segment

pytestmark = pytest.mark.django_db
# Noon: per-day chart rows go only when their whole day is past the horizon (less an hour's
# margin), so the expected counts would be off by one in the first hour of a UTC day.
NOW = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)


def person(customer_id: str) -> Person:
    return Person.objects.create(customer_id=customer_id, created_at=NOW, updated_at=NOW)


def events(who: Person, name: str, days_ago: list[float], **data) -> None:
    """Events at those ages, with their summary and per-day counts, as the drain keeps them."""
    for n, age in enumerate(days_ago):
        at = NOW - timedelta(days=age)
        Event.objects.create(
            person=who, name=name, data=data, timestamp=at, received_at=at,
            dedupe_key=f"{who.customer_id}-{name}-{age}-{n}",
        )  # fmt: skip
        day, _ = EventDay.objects.get_or_create(day=at.date(), defaults={"count": 0})
        EventDay.objects.filter(day=day.day).update(count=day.count + 1)
    ActivitySummary.objects.create(
        person=who, name=name, count=len(days_ago),
        first_at=NOW - timedelta(days=max(days_ago)), last_at=NOW - timedelta(days=min(days_ago)),
    )  # fmt: skip


def clean(account: Account):
    with governor.slot("retention", account) as slot:
        return clean_account(account, slot, now=NOW)


@pytest.fixture(autouse=True)
def quick(settings, spool):
    settings.RETENTION_BATCH_SIZE = 3
    settings.GOVERNOR_DUTY = 1.0
    settings.RETENTION_DEFAULT_DAYS = {"events": 30, "deliveries": 60, "dead_letters": 7}


def test_it_deletes_events_past_the_horizon_in_batches_and_keeps_the_rest(cast):
    with cast.acme:
        ann, bob = person("ann"), person("bob")
        events(ann, "login", [1, 10, 29, 31, 40, 50, 60, 70, 80])
        events(bob, "purchase", [2, 45, 90])
    cleaned = clean(cast.acme)
    assert (cleaned.events, cleaned.event_days) == (8, 8)
    with cast.acme:
        kept = sorted(Event.objects.values_list("person__customer_id", "name"))
        assert kept == [("ann", "login")] * 3 + [("bob", "purchase")]
        assert all(e.timestamp > NOW - timedelta(days=30, hours=1) for e in Event.objects.all())
        assert EventDay.objects.filter(day__lt=(NOW - timedelta(days=31)).date()).count() == 0
        # The summaries are all-time counts: they do not shrink when old events go.
        assert dict(ActivitySummary.objects.values_list("name", "count")) == {
            "login": 9, "purchase": 3,
        }  # fmt: skip
    run = MaintenanceRun.objects.get()
    assert (run.kind, run.account_label, run.state, run.rows_done) == (
        "retention", "acme", "done", 8,
    )  # fmt: skip


def test_another_account_is_left_alone(cast):
    with cast.acme:
        events(person("ann"), "login", [1, 40])
    with cast.globex:
        events(person("gina"), "login", [1, 40, 400])
    clean(cast.acme)
    with cast.globex:
        assert Event.objects.count() == 3
    with cast.acme:
        assert Event.objects.count() == 1


def test_the_accounts_shorter_choice_applies_and_the_staff_ceiling_caps_it(cast):
    with cast.acme:
        events(person("ann"), "login", [1, 5, 12, 25])
    RetentionPolicy.objects.create(account=cast.acme, events_days=10)
    assert clean(cast.acme).events == 2
    policy = RetentionPolicy.objects.get(account=cast.acme)
    policy.events_days, policy.events_limit_days = 20, 3
    policy.save()
    assert policy.days("events") == 3
    assert clean(cast.acme).events == 1
    assert RetentionPolicy.objects.get(account=cast.acme).cleaned_at == NOW


def test_segments_that_read_stored_events_are_recomputed_after_a_cleanup(cast):
    filtered = {
        "type": "group", "op": "and", "children": [{
            "type": "event", "name": "purchase", "operator": "performed",
            "filters": [{"property": "plan", "operator": "equals", "value": "pro"}],
        }],
    }  # fmt: skip
    all_time = {
        "type": "group", "op": "and",
        "children": [{"type": "event", "name": "purchase", "operator": "performed"}],
    }  # fmt: skip
    with cast.acme:
        events(person("old"), "purchase", [50], plan="pro")
        events(person("new"), "purchase", [5], plan="pro")
        with_filter, without = (
            rule_segment("Pro buyers", filtered),
            rule_segment("Buyers", all_time),
        )
        assert members(with_filter) == members(without) == {"old", "new"}
    assert clean(cast.acme).segments_recomputed == 1
    with cast.acme:
        # Property filters read the kept events; all-time counts read the summaries.
        assert members(with_filter) == {"new"}
        assert members(without) == {"old", "new"}


def test_old_deliveries_go_with_their_events_and_unsent_ones_stay(cast):
    with cast.acme:
        ann = person("ann")
        for age, state in ((10, "delivered"), (70, "opened"), (80, "queued")):
            at = NOW - timedelta(days=age)
            delivery = Delivery.objects.create(
                person=ann, email="ann@example.com", state=state, created_at=at
            )
            DeliveryEvent.objects.create(delivery=delivery, person=ann, kind="sent", at=at)
    assert clean(cast.acme).deliveries == 1
    with cast.acme:
        assert sorted(Delivery.objects.values_list("state", flat=True)) == ["delivered", "queued"]
        assert DeliveryEvent.objects.count() == 2


def test_dead_letters_past_the_horizon_go_for_that_account_only(cast):
    old = NOW - timedelta(days=8)
    for account in (cast.acme, cast.globex):
        for n, at in enumerate((old, NOW)):
            DeadLetter.objects.create(
                account_id=account.pk, source=f"{account.slug}:{n}", payload={}, error="x",
                created_at=at,
            )  # fmt: skip
    assert clean(cast.acme).dead_letters == 1
    assert sorted(DeadLetter.objects.values_list("source", flat=True)) == [
        "acme:1", "globex:0", "globex:1",
    ]  # fmt: skip


def test_dead_letters_of_a_deleted_account_go_at_the_next_round(cast):
    gone_id = max(Account.objects.values_list("pk", flat=True)) + 1000
    DeadLetter.objects.create(account_id=gone_id, source="n:1", payload={"p": 1}, error="x")
    DeadLetter.objects.create(account_id=cast.acme.pk, source="n:2", payload={}, error="x")
    with governor.slot("retention") as slot:
        assert clean_control_plane(slot).dead_letters == 1
    assert list(DeadLetter.objects.values_list("source", flat=True)) == ["n:2"]


def test_the_worker_command_cleans_every_account_under_the_governor(cast, capsys):
    with cast.acme:
        events(person("ann"), "login", [1, 40])
    with cast.globex:
        events(person("gina"), "login", [50, 60])
    call_command("run_retention")
    assert "Deleted 3 events" in capsys.readouterr().out
    runs = MaintenanceRun.objects.order_by("pk").values_list("account_label", "state")
    assert ("acme", "done") in runs and ("globex", "done") in runs and ("", "done") in runs


def reloptions(table: str) -> list[str]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT reloptions FROM pg_class WHERE oid = to_regclass(%s)", [table])
        return cursor.fetchone()[0] or []


def test_a_large_deletion_turns_autovacuum_off_and_vacuums_once_at_the_end(
    cast, settings, monkeypatch
):
    from maintenance import retention

    settings.RETENTION_VACUUM_TAKEOVER_ROWS = 4
    seen: list[tuple[str, list[str]]] = []
    # VACUUM cannot run inside the test's transaction; the drill test runs the real one.
    monkeypatch.setattr(retention, "vacuum", lambda table: seen.append((table, reloptions(table))))
    with cast.acme:
        events(person("ann"), "login", [1, 40, 50, 60, 70, 80, 90])
        before = reloptions("segments_event")
        assert "autovacuum_enabled=false" not in before
    assert clean(cast.acme).events == 6
    with cast.acme:
        # Vacuumed once, while autovacuum was off; afterwards the table's own settings again.
        assert [(table, "autovacuum_enabled=false" in options) for table, options in seen] == [
            ("segments_event", True)
        ]
        assert reloptions("segments_event") == before
        assert "autovacuum_enabled=false" not in reloptions("messaging_delivery")


def test_a_small_deletion_leaves_vacuuming_to_autovacuum_and_resets_a_killed_rounds_setting(
    cast, settings, monkeypatch
):
    from django.db import connection

    from maintenance import retention

    settings.RETENTION_VACUUM_TAKEOVER_ROWS = 100
    seen: list[str] = []
    monkeypatch.setattr(retention, "vacuum", seen.append)
    with cast.acme:
        events(person("ann"), "login", [1, 40, 50])
        # As a round killed between turning autovacuum off and back on would leave it.
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE segments_event SET (autovacuum_enabled = false)")
    assert clean(cast.acme).events == 2
    assert seen == []
    with cast.acme:
        assert "autovacuum_enabled=false" not in reloptions("segments_event")
    with cast.globex:
        assert "autovacuum_enabled=false" not in reloptions("segments_event")
