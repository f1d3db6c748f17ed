"""Who may reach which messaging rows.

Dashboard views go through accounts.access's decorators (the middleware already put the
request on its account's schema) and these helpers for single rows. Recipients reach their
own delivery through a signed link and nothing else.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.db import transaction
from django.http import Http404, HttpRequest
from django.shortcuts import get_object_or_404
from django.utils import timezone

from accounts.models import Account
from messaging import links
from messaging.models import Broadcast, Delivery, Topic, TopicOptOut
from segments import membership
from segments.models import Person


def get_broadcast(request: HttpRequest, broadcast_id: int) -> Broadcast:
    return get_object_or_404(Broadcast.objects.select_related("segment", "topic"), pk=broadcast_id)


def get_delivery(request: HttpRequest, delivery_id: int) -> Delivery:
    return get_object_or_404(Delivery.objects.select_related("broadcast", "person"), pk=delivery_id)


def get_topic(request: HttpRequest, topic_id: int) -> Topic:
    return get_object_or_404(Topic, pk=topic_id)


def link_target(salt: str, token: str, max_age: int) -> links.LinkTarget:
    target = links.read(salt, token, max_age)
    if target is None:
        raise Http404("This link is not valid or has expired.")
    return target


@dataclass
class LinkRecipient:
    """The person a preferences link was sent to, with their topics."""

    delivery: Delivery
    person: Person | None
    topics: list[Topic]
    opted_out: set[int]

    @property
    def subscribed(self) -> bool:
        return self.person is not None and not self.person.unsubscribed

    def save_preferences(self, subscribed: bool, topics: set[int]) -> None:
        """`topics` are the ones the person still wants; the others become opt-outs."""
        if self.person is None:
            return
        now = timezone.now()
        with transaction.atomic():
            # The account's writer lock first, as the drain and imports hold it while they
            # read, change and write people: without it a batch read before this save wrote
            # the person back as it was, subscription and all.
            membership.lock_account()
            person = Person.objects.select_for_update().get(pk=self.person.pk)
            if person.unsubscribed == subscribed:
                person.unsubscribed = not subscribed
                person.attributes["unsubscribed"] = not subscribed
                person.attribute_times["unsubscribed"] = now.timestamp()
                person.updated_at = now
                person.save(
                    update_fields=["unsubscribed", "attributes", "attribute_times", "updated_at"]
                )
                # Segments on the subscription follow at once, as after a drained unsubscribe.
                membership.update_touched(
                    {person.pk: {"subscription", "attribute:unsubscribed"}},
                    membership.Cause.INGEST,
                )
            wanted = {topic.pk for topic in self.topics if topic.pk in topics}
            out = {topic.pk for topic in self.topics} - wanted
            TopicOptOut.objects.filter(person=person, topic_id__in=wanted).delete()
            TopicOptOut.objects.bulk_create(
                [TopicOptOut(person=person, topic_id=pk, at=now) for pk in out],
                ignore_conflicts=True,
            )
            self.person, self.opted_out = person, out


@contextmanager
def recipient_for(target: links.LinkTarget) -> Iterator[LinkRecipient]:
    """On the link's account (by its id, never from input), the delivery's recipient."""
    if not target.account.isdigit():
        raise Http404("This link is not valid.")
    account = Account.objects.filter(pk=int(target.account)).first()
    if account is None:
        raise Http404("This link is not valid.")
    with account:
        delivery = Delivery.objects.select_related("person").filter(pk=target.delivery).first()
        if delivery is None:
            raise Http404("This message no longer exists.")
        person = delivery.person
        opted_out = (
            set(TopicOptOut.objects.filter(person=person).values_list("topic_id", flat=True))
            if person
            else set()
        )
        yield LinkRecipient(delivery, person, list(Topic.objects.all()), opted_out)
