"""Provider webhooks (Mailgun, through django-anymail) and Customer.io's
`POST /api/v1/metrics` update deliveries; bounces and complaints suppress the address.

Payloads follow the providers' documented formats: Mailgun's "event-data" webhooks with a
signature block (HMAC-SHA256 of timestamp and token with the webhook signing key), posted to
a URL carrying anymail's shared webhook credentials (HTTP Basic).
"""

import base64
import hashlib
import hmac
import json
import time

import pytest

from messaging.models import Broadcast, Delivery, DeliveryEvent
from segments.models import Person, Suppression
from tests.conftest import FerryClient
from tests.ingest.conftest import api_client, basic, send
from tests.messaging.conftest import drain, make_person, sent_delivery
from tests.schema import indexes_on, only_a_unique_index

pytestmark = pytest.mark.django_db

SIGNING_KEY = "key-mailgun-webhook-signing-test"
WEBHOOK_SECRET = "ferry:webhook-secret"


@pytest.fixture(autouse=True)
def anymail(settings):
    settings.ANYMAIL = {
        "MAILGUN_WEBHOOK_SIGNING_KEY": SIGNING_KEY,
        "WEBHOOK_SECRET": WEBHOOK_SECRET,
    }


@pytest.fixture
def ann(cast) -> Person:
    return make_person(cast.acme, "ann-1", "ann@example.com")


def mailgun(event_data: dict, token: str = "", key: str = SIGNING_KEY) -> dict:
    timestamp = str(int(time.time()))
    token = token or base64.b16encode(str(time.time_ns()).encode()).decode().lower()[:50]
    signature = hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    return {
        "signature": {"timestamp": timestamp, "token": token, "signature": signature},
        "event-data": event_data,
    }


def mailgun_event(delivery: Delivery, event: str, **extra) -> dict:
    return {
        "event": event,
        "timestamp": time.time(),
        "id": "CPgfbmQMTCKtHW6uIWtuVe",
        "recipient": delivery.email,
        "recipient-domain": "example.com",
        "tags": [],
        "user-variables": {},
        "envelope": {"sender": "news@acme.example", "transport": "smtp", "targets": delivery.email},
        "message": {
            "headers": {
                "to": delivery.email,
                # Mailgun echoes the Message-ID header without its angle brackets.
                "message-id": delivery.message_id.strip("<>"),
                "from": "news@acme.example",
                "subject": "Hi",
            },
            "attachments": [],
            "size": 1024,
        },
        **extra,
    }


def post_mailgun(payload: dict):
    # Anymail checks the shared webhook credentials (in the URL) and Mailgun's signature.
    return FerryClient(HTTP_HOST="localhost").post(
        "/email/webhooks/mailgun/", json.dumps(payload), content_type="application/json",
        HTTP_AUTHORIZATION=basic(*WEBHOOK_SECRET.split(":")),
    )  # fmt: skip


def state_of(account, delivery: Delivery) -> Delivery:
    with account:
        return Delivery.objects.get(pk=delivery.pk)


def test_mailgun_delivered_opened_and_clicked_move_the_delivery_along(cast, ann, spool):
    delivery = sent_delivery(cast.acme, ann)
    delivered = mailgun_event(delivery, "delivered", **{"delivery-status": {
        "tls": True, "mx-host": "mx.example.com", "code": 250, "description": "",
        "attempt-no": 1, "message": "OK", "certificate-verified": True,
    }})  # fmt: skip
    assert post_mailgun(mailgun(delivered)).status_code == 200
    drain(spool)
    assert state_of(cast.acme, delivery).state == "delivered"

    opened = mailgun_event(delivery, "opened", **{"client-info": {
        "client-type": "mobile browser", "client-os": "iOS", "device-type": "mobile",
        "client-name": "Mobile Safari", "user-agent": "Mozilla/5.0 (iPhone)",
    }})  # fmt: skip
    clicked = mailgun_event(delivery, "clicked", url="https://acme.example/news")
    assert post_mailgun(mailgun(opened)).status_code == 200
    assert post_mailgun(mailgun(clicked)).status_code == 200
    drain(spool)

    delivery = state_of(cast.acme, delivery)
    assert delivery.state == "clicked"
    assert delivery.delivered_at and delivery.opened_at and delivery.clicked_at
    with cast.acme:
        kinds = list(DeliveryEvent.objects.order_by("id").values_list("kind", flat=True))
        click = DeliveryEvent.objects.get(kind="clicked")
        broadcast = Broadcast.objects.get(pk=delivery.broadcast_id)
    assert kinds == ["delivered", "opened", "clicked"]
    assert click.detail["source"] == "webhook:mailgun"
    assert click.detail["url"] == "https://acme.example/news"
    assert (broadcast.delivered, broadcast.opened, broadcast.clicked) == (1, 1, 1)


def test_a_mailgun_permanent_failure_bounces_and_suppresses_the_address(cast, ann, spool):
    delivery = sent_delivery(cast.acme, ann)
    failed = mailgun_event(delivery, "failed", severity="permanent", reason="bounce", **{
        "delivery-status": {
            "code": 550, "attempt-no": 1, "description": "Not delivering to previously bounced address",
            "message": "5.1.1 The email account that you tried to reach does not exist.",
        },
    })  # fmt: skip
    assert post_mailgun(mailgun(failed)).status_code == 200
    drain(spool)
    delivery = state_of(cast.acme, delivery)
    assert delivery.state == "bounced" and delivery.bounced_at
    with cast.acme:
        assert Suppression.objects.filter(kind="email", value="ann@example.com").exists()
        event = DeliveryEvent.objects.get(kind="bounced")
        assert Broadcast.objects.get(pk=delivery.broadcast_id).bounced == 1
    assert "does not exist" in event.detail["mta_response"]


def test_a_mailgun_temporary_failure_is_a_deferral_that_changes_no_state(cast, ann, spool):
    delivery = sent_delivery(cast.acme, ann)
    deferred = mailgun_event(delivery, "failed", severity="temporary", reason="generic", **{
        "delivery-status": {"code": 452, "message": "4.2.2 Mailbox full", "attempt-no": 1},
    })  # fmt: skip
    post_mailgun(mailgun(deferred))
    drain(spool)
    assert state_of(cast.acme, delivery).state == "sent"
    with cast.acme:
        assert DeliveryEvent.objects.get().kind == "deferred"
        assert not Suppression.objects.exists()


def test_a_mailgun_complaint_marks_spam_and_suppresses(cast, ann, spool):
    delivery = sent_delivery(cast.acme, ann)
    post_mailgun(mailgun(mailgun_event(delivery, "complained")))
    drain(spool)
    assert state_of(cast.acme, delivery).state == "spammed"
    with cast.acme:
        assert Suppression.objects.filter(value="ann@example.com").exists()


def test_a_mailgun_unsubscribe_unsubscribes_the_person(cast, ann, spool):
    delivery = sent_delivery(cast.acme, ann)
    post_mailgun(mailgun(mailgun_event(delivery, "unsubscribed")))
    drain(spool)
    with cast.acme:
        assert Person.objects.get(pk=ann.pk).unsubscribed


def test_a_webhook_sent_twice_is_recorded_once(cast, ann, spool):
    delivery = sent_delivery(cast.acme, ann)
    payload = mailgun(mailgun_event(delivery, "opened"), token="replayed-token-0123456789")
    post_mailgun(payload)
    post_mailgun(payload)
    drain(spool)
    with cast.acme:
        assert DeliveryEvent.objects.filter(kind="opened").count() == 1
        assert Broadcast.objects.get(pk=delivery.broadcast_id).opened == 1


def test_delivery_events_carry_one_index_on_their_dedupe_key(cast):
    # The unique one that a replayed webhook meets (ON CONFLICT, above); not the LIKE index
    # Django adds beside unique=True on a CharField, which nothing uses (messaging 0004).
    with cast.acme:
        indexes = indexes_on("messaging_deliveryevent", "dedupe_key")
    assert only_a_unique_index(indexes, "deliveryevent_dedupe_key"), indexes


def test_a_bad_signature_is_refused_and_nothing_is_spooled(cast, ann, spool):
    delivery = sent_delivery(cast.acme, ann)
    response = post_mailgun(mailgun(mailgun_event(delivery, "complained"), key="wrong-key"))
    assert response.status_code == 400
    assert spool.pending_count() == 0


def test_the_webhook_does_not_exist_until_its_secret_is_configured(cast, settings):
    settings.ANYMAIL = {}
    assert post_mailgun({}).status_code == 404


def test_an_event_for_a_message_ferry_did_not_send_is_ignored(cast, ann, spool):
    delivery = sent_delivery(cast.acme, ann)
    event = mailgun_event(delivery, "opened")
    event["message"]["headers"]["message-id"] = "20130503182626.18666.16540@mailgun.example"
    assert post_mailgun(mailgun(event)).status_code == 200
    assert spool.pending_count() == 0


def test_each_event_goes_to_the_account_its_message_id_names(cast, ann, spool):
    gina = make_person(cast.globex, "g-1", "gina@globex.example")
    acme_delivery = sent_delivery(cast.acme, ann)
    globex_delivery = sent_delivery(cast.globex, gina)
    post_mailgun(mailgun(mailgun_event(globex_delivery, "opened")))
    drain(spool)
    assert state_of(cast.globex, globex_delivery).state == "opened"
    assert state_of(cast.acme, acme_delivery).state == "sent"


# --- Customer.io metrics ---------------------------------------------------------------------


def test_metrics_record_delivery_events_by_id_or_message_id(cast, ann, spool, acme_key):
    delivery = sent_delivery(cast.acme, ann)
    client = api_client(acme_key)
    ok = send(client, "post", "/api/v1/metrics", {
        "delivery_id": str(delivery.pk), "metric": "delivered", "timestamp": int(time.time()),
    })  # fmt: skip
    assert ok.status_code == 200
    send(client, "post", "/api/v1/metrics", {
        "delivery_id": delivery.message_id.strip("<>"), "metric": "clicked",
        "href": "https://acme.example/pricing", "recipient": delivery.email,
    })  # fmt: skip
    send(client, "post", "/api/v1/metrics", {
        "delivery_id": delivery.pk, "metric": "dropped", "reason": "suppressed by provider",
    })  # fmt: skip
    drain(spool)
    delivery = state_of(cast.acme, delivery)
    assert delivery.delivered_at and delivery.clicked_at and delivery.failed_at
    assert delivery.state == "failed"
    with cast.acme:
        click = DeliveryEvent.objects.get(kind="clicked")
    assert click.detail == {
        "source": "metrics", "metric": "clicked", "url": "https://acme.example/pricing",
        "recipient": "ann@example.com",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"metric": "opened"}, "delivery_id"),
        ({"delivery_id": "1", "metric": "read"}, "metric"),
        ({"delivery_id": "1", "metric": "opened", "timestamp": "yesterday"}, "timestamp"),
        ({"delivery_id": "1", "metric": "clicked", "href": 5}, "href"),
    ],
)
def test_bad_metrics_are_refused_with_the_field(cast, spool, acme_key, body, field):
    response = send(api_client(acme_key), "post", "/api/v1/metrics", body)
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == field
    assert spool.pending_count() == 0


def test_metrics_need_credentials_and_only_reach_the_senders_account(cast, ann, spool, globex_key):
    delivery = sent_delivery(cast.acme, ann)
    body = {"delivery_id": str(delivery.pk), "metric": "spammed"}
    assert send(api_client(), "post", "/api/v1/metrics", body).status_code == 401
    assert send(api_client(globex_key), "post", "/api/v1/metrics", body).status_code == 200
    drain(spool)
    assert state_of(cast.acme, delivery).state == "sent"
    with cast.acme:
        assert not Suppression.objects.exists()
