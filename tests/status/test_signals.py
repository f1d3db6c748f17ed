"""Component signals: the Management Interface's 5xx rate and the provider registry."""

from datetime import timedelta

import pytest
from django.utils import timezone

from status.component_signals import Reading, _providers, proposal, readings_for, signal_provider
from status.middleware import RequestCounter
from status.models import Component, RequestMinute
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def record_minutes(requests: int, errors: int) -> None:
    # Only this test's minutes: servers that earlier tests started committed real ones (rolled
    # back with the test's transaction, so they are only hidden here).
    RequestMinute.objects.all().delete()
    minute = timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=1)
    RequestMinute.objects.create(minute=minute, requests=requests, server_errors=errors)


def test_the_counter_stores_finished_minutes_once_a_minute():
    counter = RequestCounter()
    # A minute of its own: servers started by other tests commit their real minutes.
    start = timezone.now().replace(year=2001, second=5, microsecond=0)
    ours = RequestMinute.objects.filter(minute__gte=start.replace(second=0), minute__year=2001)
    for status in (200, 200, 500, 503, 404):
        counter.count(status, start)
    assert not ours.exists()  # still the same minute: no write yet
    counter.count(200, start + timedelta(minutes=1))
    row = ours.get()
    assert (row.minute, row.requests, row.server_errors) == (start.replace(second=0), 5, 2)
    # A second process adds to the same minute.
    other = RequestCounter()
    other.count(500, start)
    other.count(200, start + timedelta(minutes=1))
    row.refresh_from_db()
    assert (row.requests, row.server_errors) == (6, 3)


def test_dashboard_requests_are_counted_but_the_status_host_is_not(cast, status_client):
    from status.middleware import request_counter

    request_counter.minutes.clear()
    client_for(cast.acme, cast.alice).get("/")
    client_for(cast.acme).get("/")
    status_client.get("/api/v2/summary.json")
    assert sum(counts[0] for counts in request_counter.minutes.values()) == 2
    request_counter.minutes.clear()


def test_too_few_requests_propose_nothing(demo):
    record_minutes(requests=10, errors=10)
    [reading] = readings_for(demo["management-interface"])
    assert reading.proposed_status is None
    assert "too few to judge" in reading.value


def test_a_high_5xx_rate_proposes_an_outage_that_staff_confirm(demo, cast, committed):
    record_minutes(requests=200, errors=20)  # 10 %
    component = demo["management-interface"]
    [reading] = readings_for(component)
    assert reading.value == "10.0% of 200 requests"
    assert proposal(component, [reading]) == "partial_outage"

    staff = client_for(None, cast.stella)
    page = staff.get("/staff/status/").content.decode()
    assert "Signals suggest <strong>Partial outage</strong>" in page
    # Proposed, not applied: nothing changed until a person confirms.
    component.refresh_from_db()
    assert component.status == "operational"

    staff.post(
        f"/staff/status/components/{component.code}/status/",
        {f"{component.code}-status": "partial_outage"},
    )
    component.refresh_from_db()
    assert component.status == "partial_outage"
    page = staff.get("/staff/status/").content.decode()
    assert "Signals suggest" not in page


def test_a_healthy_rate_proposes_operational_after_an_outage(demo):
    record_minutes(requests=500, errors=1)
    component = Component.objects.get(key="management-interface")
    component.set_status("major_outage")
    assert proposal(component, readings_for(component)) == "operational"


@pytest.fixture
def registered():
    keys = []

    def register(key, provider):
        signal_provider(key)(provider)
        keys.append((key, provider))

    yield register
    for key, provider in keys:
        _providers[key].remove(provider)


def test_registering_a_provider_takes_a_decorator(demo, registered):
    def backlog(component: Component) -> Reading:
        return Reading("Spool backlog", "2,000,000 events", "major_outage")

    def broken(component: Component) -> Reading:
        raise RuntimeError("spool unreadable")

    registered("data-collection", backlog)
    registered("data-collection", broken)
    readings = readings_for(demo["data-collection"])
    # Ingestion registers its own readings for this component too; find these two by label.
    by_label = {reading.label: reading for reading in readings}
    assert by_label["Spool backlog"] == Reading("Spool backlog", "2,000,000 events", "major_outage")
    assert by_label["broken"].value == "unavailable"
    assert proposal(demo["data-collection"], readings) == "major_outage"


def test_email_sending_proposes_a_state_from_failed_sends():
    from status.models import DeliveryAttempt, Notification

    component = Component(key="email-sending", name="Email Sending")
    (reading,) = [r for r in readings_for(component) if r.label == "Email send errors, last hour"]
    assert reading.proposed_status is None  # nothing sent: too few to judge
    notification = Notification.objects.create(channel="email", target="a@b.c", event="x")
    for succeeded in [True] * 7 + [False] * 3:
        DeliveryAttempt.objects.create(notification=notification, succeeded=succeeded)
    (reading,) = [r for r in readings_for(component) if r.label == "Email send errors, last hour"]
    assert (reading.value, reading.proposed_status) == ("30.0% of 10 sends", "partial_outage")
