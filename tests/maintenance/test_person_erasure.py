"""Deleting a person takes everything of theirs at once: events (anonymous ones too),
deliveries with their events, and the dead letters that name them."""

from datetime import UTC, datetime

import pytest

from ingest import wire
from ingest.models import DeadLetter
from messaging.models import Delivery, DeliveryEvent
from segments.models import ActivitySummary, Event, Person
from tests.conftest import client_for

pytestmark = pytest.mark.django_db
NOW = datetime.now(UTC)


def make(customer_id, email, anonymous_id):
    person = Person.objects.create(
        customer_id=customer_id, email=email, attributes={"anonymous_id": anonymous_id},
        created_at=NOW, updated_at=NOW,
    )  # fmt: skip
    Event.objects.create(person=person, name="login", timestamp=NOW, received_at=NOW,
                         dedupe_key=f"{customer_id}-1")  # fmt: skip
    Event.objects.create(anonymous_id=anonymous_id, name="page", timestamp=NOW,
                         received_at=NOW, dedupe_key=f"{customer_id}-anon")  # fmt: skip
    ActivitySummary.objects.create(person=person, name="login", count=1, first_at=NOW,
                                   last_at=NOW)  # fmt: skip
    delivery = Delivery.objects.create(person=person, email=email, state="delivered")
    DeliveryEvent.objects.create(delivery=delivery, person=person, kind="delivered", at=NOW)
    return person


@pytest.mark.parametrize("suppress", ["0", "1"])
def test_delete_removes_events_deliveries_and_dead_letters_at_once(cast, spool, suppress):
    with cast.acme:
        ann = make("ann-1", "ann@example.com", "anon-a")
        make("bob-1", "bob@example.com", "anon-b")
    for n, item in enumerate([
        wire.cio_event("ann-1", {"name": "x"}),
        wire.cio_event("ann@example.com", {"name": "y"}),
        wire.cio_event("bob-1", {"name": "z"}),
    ]):  # fmt: skip
        DeadLetter.objects.create(account_id=cast.acme.pk, source=f"n:{n}", payload=item, error="e")
    DeadLetter.objects.create(
        account_id=cast.globex.pk,
        source="n:9",
        payload=wire.cio_event("ann-1", {"name": "w"}),
        error="e",
    )
    response = client_for(cast.acme, cast.mia).post(
        f"/people/{ann.pk}/delete/", {"suppress": suppress}
    )
    assert response.status_code == 302
    with cast.acme:
        assert list(Event.objects.values_list("dedupe_key", flat=True).order_by("dedupe_key")) == [
            "bob-1-1", "bob-1-anon",
        ]  # fmt: skip
        assert list(Delivery.objects.values_list("email", flat=True)) == ["bob@example.com"]
        assert DeliveryEvent.objects.count() == 1
        assert list(ActivitySummary.objects.values_list("person__customer_id", flat=True)) == [
            "bob-1"
        ]
    # Bob's dead letter stays, and globex's letter about its own "ann-1" is globex's business.
    assert sorted(DeadLetter.objects.values_list("source", flat=True)) == ["n:2", "n:9"]


def test_the_profile_says_what_deleting_removes_and_when(cast, spool):
    with cast.acme:
        ann = make("ann-1", "ann@example.com", "anon-a")
    page = client_for(cast.acme, cast.mia).get(f"/people/{ann.pk}/")
    assert b"deliveries with their events and segment memberships at once" in page.content
