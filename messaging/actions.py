"""Dashboard writes to broadcasts and topics: each one audited, in one transaction."""

import smtplib
from dataclasses import dataclass
from datetime import datetime

from django.core.mail import mailers
from django.db import transaction
from django.utils import timezone

from accounts.models import AuditEntry, User
from messaging import links
from messaging.mime import InvalidRecipient
from messaging.models import Broadcast, Delivery, DeliveryEvent, Topic
from messaging.render import Recipient, build_message, compile_broadcast, person_values
from messaging.sending import account_key, smtp_reason
from segments.models import Membership, Person

BROADCAST_FIELDS = [
    "name", "subject", "from_email", "reply_to", "body_format", "body", "text_body",
    "segment_id", "topic_id",
]  # fmt: skip


def assign(broadcast: Broadcast, data: dict) -> None:
    for name in BROADCAST_FIELDS:
        key = name.removesuffix("_id")
        setattr(broadcast, name, data[key] if data[key] != "" else None)
    broadcast.reply_to = data["reply_to"] or ""
    broadcast.text_body = data["text_body"] or ""


@transaction.atomic
def create_broadcast(user: User, data: dict) -> Broadcast:
    broadcast = Broadcast(created_by=user.email)
    assign(broadcast, data)
    broadcast.save()
    AuditEntry.record(user, "broadcast.created", broadcast.name, id=broadcast.pk)
    return broadcast


@transaction.atomic
def update_broadcast(broadcast: Broadcast, user: User, data: dict) -> None:
    assign(broadcast, data)
    broadcast.updated_at = timezone.now()
    broadcast.save(update_fields=[*BROADCAST_FIELDS, "updated_at"])
    AuditEntry.record(user, "broadcast.changed", broadcast.name, id=broadcast.pk)


@transaction.atomic
def schedule_broadcast(broadcast: Broadcast, user: User, send_at: datetime | None) -> None:
    """Send now (the worker picks it up within seconds) or at a time."""
    broadcast.state = Broadcast.State.SCHEDULED
    broadcast.send_at = send_at or timezone.now()
    broadcast.updated_at = timezone.now()
    broadcast.save(update_fields=["state", "send_at", "updated_at"])
    AuditEntry.record(
        user, "broadcast.scheduled", broadcast.name, id=broadcast.pk,
        send_at=broadcast.send_at.isoformat(),
    )  # fmt: skip


@transaction.atomic
def cancel_broadcast(broadcast: Broadcast, user: User) -> int:
    """A scheduled broadcast goes back to draft; one being sent stops, and the messages not
    yet claimed are skipped. Returns how many were skipped."""
    locked = Broadcast.objects.select_for_update().get(pk=broadcast.pk)
    skipped = 0
    if locked.state == Broadcast.State.SCHEDULED:
        locked.state = Broadcast.State.DRAFT
        locked.send_at = None
    elif locked.state == Broadcast.State.SENDING:
        skipped = Delivery.objects.filter(broadcast=locked, state=Delivery.State.QUEUED).update(
            state=Delivery.State.SKIPPED, reason="the broadcast was cancelled"
        )
        locked.state = Broadcast.State.CANCELLED
        locked.finished_at = timezone.now()
        locked.skipped += skipped
    else:
        return 0
    locked.save(update_fields=["state", "send_at", "finished_at", "skipped"])
    AuditEntry.record(user, "broadcast.cancelled", locked.name, id=locked.pk, skipped=skipped)
    broadcast.refresh_from_db()
    return skipped


def people_matching(text: str):
    """People with this email address (any case) or customer id."""
    text = text.strip()
    if "@" in text:
        return Person.objects.with_emails([text])
    return Person.objects.filter(customer_id=text)


def find_person(text: str) -> Person | None:
    if not text.strip():
        return None
    return people_matching(text).first()


def sample_person(broadcast: Broadcast) -> Person | None:
    membership = (
        Membership.objects.filter(segment_id=broadcast.segment_id)
        .select_related("person")
        .order_by("person_id")
        .first()
    )
    return membership.person if membership else None


@dataclass
class Preview:
    person: Person | None
    subject: str
    html: str
    text: str


def preview(broadcast: Broadcast, person: Person | None) -> Preview:
    """The message as `person` would get it (links are real but name no delivery)."""
    compiled = compile_broadcast(broadcast, account_key(), track=False)
    values = person_values(person.customer_id, person.email, person.attributes) if person else {}
    recipient = Recipient(account_key(), 0, values.get("email", ""), values)
    return Preview(
        person,
        compiled.subject.fill(recipient),
        compiled.html.fill(recipient),
        compiled.text.fill(recipient),
    )


def send_test(broadcast: Broadcast, user: User, address: str, person: Person | None) -> Delivery:
    """Send the message to one address now, with `person`'s values; recorded as a test
    delivery (its links work, and count nowhere)."""
    now = timezone.now()
    values = person_values(person.customer_id, person.email, person.attributes) if person else {}
    with transaction.atomic():
        delivery = Delivery.objects.create(
            broadcast=broadcast, email=address, is_test=True, state=Delivery.State.SENDING,
            claimed_at=now,
        )  # fmt: skip
        delivery.message_id = links.new_message_id(delivery.pk, account_key())
        delivery.save(update_fields=["message_id"])
        AuditEntry.record(user, "broadcast.test_sent", broadcast.name, id=broadcast.pk, to=address)
    compiled = compile_broadcast(broadcast, account_key())
    recipient = Recipient(account_key(), delivery.pk, address, values)
    mailer = mailers["broadcasts"]
    try:
        build_message(compiled, recipient, delivery.message_id, connection=mailer).send()
    except (smtplib.SMTPException, OSError, InvalidRecipient) as error:
        delivery.state, delivery.failed_at = Delivery.State.FAILED, timezone.now()
        delivery.reason = smtp_reason(error)
    else:
        delivery.state, delivery.sent_at = Delivery.State.SENT, timezone.now()
    delivery.values = recipient.recorded_values
    delivery.save(update_fields=["state", "failed_at", "sent_at", "reason", "values"])
    DeliveryEvent.objects.create(
        delivery=delivery, broadcast=broadcast, kind=delivery.state, at=timezone.now(),
        detail={"source": "test", **({"reason": delivery.reason} if delivery.reason else {})},
    )  # fmt: skip
    return delivery


@transaction.atomic
def create_topic(user: User, name: str, description: str) -> Topic:
    topic = Topic.objects.create(name=name, description=description)
    AuditEntry.record(user, "topic.created", name, id=topic.pk)
    return topic


@transaction.atomic
def delete_topic(topic: Topic, user: User) -> None:
    AuditEntry.record(user, "topic.deleted", topic.name, id=topic.pk)
    topic.delete()
