"""Email subscribers: double opt-in, per-component choice, one-click unsubscribe."""

import re

import pytest
from django.core import mail
from django.core.management import call_command
from django.test import Client

from status import actions
from status.access import unsubscribe_token
from status.models import Subscriber

pytestmark = pytest.mark.django_db


def run_worker() -> None:
    call_command("status_worker", "--once", verbosity=0)


def link_in(message, path: str) -> str:
    return re.search(rf"http://status\.localhost:8000({path}[^\s]+)", message.body).group(1)


def subscribe(client: Client, email: str, components=()) -> Subscriber:
    data = {"email": email, "components": [c.pk for c in components]}
    response = client.post("/subscribe/", data)
    assert response.status_code == 302
    assert response["Location"] == "/subscribe/sent/"
    return Subscriber.objects.get(email=email)


def confirmed_subscriber(client: Client, email: str, components=()) -> Subscriber:
    subscriber = subscribe(client, email, components)
    run_worker()  # sends the confirmation email
    mail.outbox.clear()
    subscriber.confirm()
    return subscriber


def test_subscribing_sends_a_confirmation_link_that_confirms(demo, status_client):
    subscriber = subscribe(status_client, "ops@example.com")
    assert not subscriber.is_confirmed
    run_worker()
    [message] = mail.outbox
    assert message.to == ["ops@example.com"]
    assert "Confirm" in message.subject
    link = link_in(message, "/subscribe/confirm/")

    # Following the link only shows a button (mail scanners follow links too).
    assert b"Confirm subscription" in status_client.get(link).content
    subscriber.refresh_from_db()
    assert not subscriber.is_confirmed

    response = status_client.post(link)
    assert b"Subscription confirmed" in response.content
    subscriber.refresh_from_db()
    assert subscriber.is_confirmed


def test_a_tampered_confirmation_link_is_refused(demo, status_client):
    subscribe(status_client, "ops@example.com")
    run_worker()
    link = link_in(mail.outbox[0], "/subscribe/confirm/")
    assert status_client.post(link[:-3] + "xx/").status_code == 404


def test_an_unconfirmed_subscriber_gets_no_incident_email(demo, status_client):
    subscribe(status_client, "ops@example.com")
    run_worker()
    mail.outbox.clear()
    actions.open_incident(name="Slow", status="investigating", impact="minor", body="Looking.")
    run_worker()
    assert mail.outbox == []


def test_confirmed_subscribers_get_updates_with_one_click_unsubscribe(demo, status_client):
    confirmed_subscriber(status_client, "ops@example.com")
    actions.open_incident(
        name="Email delays", status="investigating", impact="minor", body="**Queued** mail.",
        component_statuses={demo["email-sending"]: "degraded_performance"},
    )  # fmt: skip
    run_worker()
    [message] = mail.outbox
    assert message.subject == "[Ferry Status] Investigating: Email delays"
    assert "**Queued** mail." in message.body
    assert message.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsubscribe = link_in(message, "/unsubscribe/")
    assert (
        message.extra_headers["List-Unsubscribe"] == f"<http://status.localhost:8000{unsubscribe}>"
    )

    # RFC 8058: the mail client POSTs with no form token and no cookie.
    client = Client(HTTP_HOST="status.localhost", enforce_csrf_checks=True)
    response = client.post(unsubscribe, {"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    assert b"Unsubscribed" in response.content
    assert not Subscriber.objects.exists()


def test_the_unsubscribe_page_asks_before_it_acts(demo, status_client):
    subscriber = confirmed_subscriber(status_client, "ops@example.com")
    response = status_client.get(f"/unsubscribe/{unsubscribe_token(subscriber)}/")
    assert b"Stop sending updates to" in response.content
    assert Subscriber.objects.filter(pk=subscriber.pk).exists()


def test_subscribers_choose_components(demo, status_client):
    confirmed_subscriber(status_client, "email-team@example.com", [demo["email-sending"]])
    confirmed_subscriber(status_client, "everything@example.com")
    actions.open_incident(
        name="Tracker down", status="identified", impact="major", body="Fixing.",
        component_statuses={demo["javascript-tracker"]: "major_outage"},
    )  # fmt: skip
    run_worker()
    assert [m.to for m in mail.outbox] == [["everything@example.com"]]


def test_an_update_without_notification_sends_nothing(demo, status_client):
    confirmed_subscriber(status_client, "ops@example.com")
    actions.open_incident(
        name="Quiet", status="identified", impact="minor", body="x", deliver_notifications=False
    )
    run_worker()
    assert mail.outbox == []


def test_the_subscribe_form_rejects_a_bad_address(demo, status_client):
    response = status_client.post("/subscribe/", {"email": "not-an-address"})
    assert response.status_code == 200
    assert b"Enter a valid email address" in response.content
    assert not Subscriber.objects.exists()
