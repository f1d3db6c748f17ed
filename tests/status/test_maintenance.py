"""Scheduled maintenance starts and completes by itself (status_worker)."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from status import actions
from status.models import Component, Incident

pytestmark = pytest.mark.django_db


def schedule(demo, start: timedelta, end: timedelta, **options) -> Incident:
    now = timezone.now()
    return actions.schedule_maintenance(
        name="Database upgrade", body="Upgrading PostgreSQL to 17.",
        components=[demo["data-processing"], demo["email-sending"]],
        scheduled_for=now + start, scheduled_until=now + end, **options,
    )  # fmt: skip


def run_worker() -> None:
    call_command("status_worker", "--once", verbosity=0)


def test_a_maintenance_starts_by_itself_at_its_time(demo, status_client, committed):
    maintenance = schedule(demo, timedelta(seconds=-1), timedelta(hours=1))
    with committed():
        run_worker()
    maintenance.refresh_from_db()
    assert maintenance.status == "in_progress"
    assert Component.objects.get(key="data-processing").status == "under_maintenance"
    assert Component.objects.get(key="data-collection").status == "operational"
    latest = maintenance.timeline()[0]
    assert latest.status == "in_progress"
    assert latest.affected_components[0]["new_status"] == "under_maintenance"
    # ... and the public page says so, from the snapshot the worker published.
    assert b"Database upgrade" in status_client.get("/").content
    assert b"Service Under Maintenance" in status_client.get("/api/v2/status.json").content


def test_a_maintenance_that_is_over_completes_by_itself(demo):
    maintenance = schedule(demo, timedelta(hours=-2), timedelta(seconds=-1))
    run_worker()  # late worker: starts and completes it in one round
    maintenance.refresh_from_db()
    assert maintenance.status == "completed"
    assert maintenance.resolved_at is not None
    assert [u.status for u in maintenance.timeline()] == ["completed", "in_progress", "scheduled"]
    assert Component.objects.get(key="data-processing").status == "operational"


def test_completing_leaves_components_broken_by_something_else_alone(demo):
    maintenance = schedule(demo, timedelta(seconds=-1), timedelta(hours=1))
    run_worker()
    actions.change_component_status(Component.objects.get(key="email-sending"), "major_outage")
    Incident.objects.filter(pk=maintenance.pk).update(
        scheduled_until=timezone.now() - timedelta(seconds=1)
    )
    run_worker()
    assert Component.objects.get(key="email-sending").status == "major_outage"
    assert Component.objects.get(key="data-processing").status == "operational"


def test_a_future_maintenance_waits(demo):
    maintenance = schedule(demo, timedelta(minutes=5), timedelta(hours=1))
    run_worker()
    maintenance.refresh_from_db()
    assert maintenance.status == "scheduled"
    assert Component.objects.get(key="data-processing").status == "operational"


def test_a_maintenance_without_auto_start_waits_for_a_person(demo):
    maintenance = schedule(demo, timedelta(seconds=-1), timedelta(hours=1), auto_start=False)
    run_worker()
    maintenance.refresh_from_db()
    assert maintenance.status == "scheduled"
