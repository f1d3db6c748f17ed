"""Webhook subscribers: Statuspage-format payloads, retried with exponential backoff."""

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.management import call_command
from django.utils import timezone

from status import actions
from status.models import DeliveryState, Notification, Subscriber, SubscriberMode
from status.notifications import deliver_due_notifications
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


class Receiver:
    """A real HTTP server on 127.0.0.1 answering with the statuses it is given, in order."""

    def __init__(self, statuses: list[int]):
        self.statuses = statuses
        self.received: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers["Content-Length"])
                receiver.received.append(json.loads(self.rfile.read(length)))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                if status in (301, 302):
                    self.send_header("Location", "http://127.0.0.1:9/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver(settings) -> Iterator:
    settings.STATUS_WEBHOOK_ALLOW_PRIVATE = True  # the test server listens on loopback
    servers = []

    def start(*statuses: int) -> Receiver:
        server = Receiver(list(statuses))
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.server.shutdown()
        server.server.server_close()


def webhook_subscriber(url: str) -> Subscriber:
    return Subscriber.objects.create(
        mode=SubscriberMode.WEBHOOK, email="ops@example.com", endpoint=url,
        confirmed_at=timezone.now(),
    )  # fmt: skip


def open_incident(demo, with_component: bool = False):
    """An incident; with the component, a component_update webhook is queued as well."""
    statuses = {demo["data-collection"]: "partial_outage"} if with_component else {}
    return actions.open_incident(
        name="API errors", status="investigating", impact="major", body="Looking into it.",
        component_statuses=statuses,
    )  # fmt: skip


def test_a_failed_webhook_is_retried_with_exponential_backoff(demo, receiver):
    hook = receiver(500, 503)
    webhook_subscriber(hook.url)
    incident = open_incident(demo)
    notification = Notification.objects.get(channel="webhook", incident=incident)

    start = timezone.now()
    call_command("status_worker", "--once", verbosity=0)
    notification.refresh_from_db()
    assert len(hook.received) == 1
    assert notification.state == DeliveryState.PENDING
    assert notification.last_error == "HTTP 500"
    first_delay = (notification.next_attempt_at - start).total_seconds()
    assert 29 <= first_delay <= 32

    # Not due yet: nothing is sent.
    call_command("status_worker", "--once", verbosity=0)
    assert len(hook.received) == 1

    # 30 s later it fails again, and the next wait doubles.
    later = notification.next_attempt_at
    deliver_due_notifications(later)
    notification.refresh_from_db()
    assert len(hook.received) == 2
    assert (notification.next_attempt_at - later).total_seconds() == 60

    deliver_due_notifications(notification.next_attempt_at)
    notification.refresh_from_db()
    assert len(hook.received) == 3
    assert notification.state == DeliveryState.SENT
    assert [a.succeeded for a in notification.delivery_attempts.order_by("pk")] == [
        False, False, True,
    ]  # fmt: skip
    assert [a.status_code for a in notification.delivery_attempts.order_by("pk")] == [500, 503, 200]


def test_the_payload_has_the_statuspage_shape(demo, receiver):
    hook = receiver()
    webhook_subscriber(hook.url)
    incident = open_incident(demo, with_component=True)
    call_command("status_worker", "--once", verbosity=0)
    incident_payload = next(p for p in hook.received if "incident" in p)
    assert set(incident_payload) == {"meta", "page", "incident"}
    assert incident_payload["meta"]["unsubscribe"].startswith(
        "http://status.localhost:8000/unsubscribe/"
    )
    assert incident_payload["page"] == {
        "id": "ferrystatus0", "status_indicator": "major",
        "status_description": "Partial System Outage",
    }  # fmt: skip
    sent = incident_payload["incident"]
    assert sent["id"] == incident.code
    assert sent["backfilled"] is False
    assert sent["incident_updates"][0]["body"] == "Looking into it."
    component_payload = next(p for p in hook.received if "component_update" in p)
    assert set(component_payload) == {"meta", "page", "component_update", "component"}
    update = component_payload["component_update"]
    assert (update["old_status"], update["new_status"]) == ("operational", "partial_outage")
    assert update["component_id"] == demo["data-collection"].code
    assert set(component_payload["component"]) == {"created_at", "id", "name", "status"}


def test_a_redirect_counts_as_a_failure(demo, receiver):
    hook = receiver(302)
    webhook_subscriber(hook.url)
    open_incident(demo)
    call_command("status_worker", "--once", verbosity=0)
    notification = Notification.objects.get(channel="webhook")
    assert notification.last_error == "HTTP 302"
    assert notification.state == DeliveryState.PENDING


def test_it_gives_up_after_the_last_attempt_and_staff_can_retry(demo, receiver, settings, cast):
    settings.STATUS_NOTIFY_MAX_ATTEMPTS = 2
    hook = receiver(500, 500)
    webhook_subscriber(hook.url)
    incident = open_incident(demo)
    notification = Notification.objects.get(channel="webhook", incident=incident)
    now = timezone.now()
    deliver_due_notifications(now)
    deliver_due_notifications(now + timedelta(hours=1))
    notification.refresh_from_db()
    assert notification.state == DeliveryState.FAILED
    assert notification.attempts == 2

    staff = client_for(None, cast.stella)
    log = staff.get("/staff/status/subscribers/").content.decode()
    assert hook.url in log
    assert "Gave up" in log
    response = staff.post(f"/staff/status/notifications/{notification.pk}/retry/")
    assert response.status_code == 302
    notification.refresh_from_db()
    assert notification.state == DeliveryState.PENDING
    deliver_due_notifications(timezone.now())
    notification.refresh_from_db()
    assert notification.state == DeliveryState.SENT


def test_webhooks_to_private_addresses_are_refused_by_default(demo, receiver, settings):
    hook = receiver()
    settings.STATUS_WEBHOOK_ALLOW_PRIVATE = False
    webhook_subscriber(hook.url)
    open_incident(demo)
    call_command("status_worker", "--once", verbosity=0)
    assert hook.received == []
    notification = Notification.objects.get(channel="webhook")
    assert "private address" in notification.last_error
