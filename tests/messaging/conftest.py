"""A real SMTP server (aiosmtpd) for the sending tests, and helpers to set up a broadcast."""

import email
import email.policy
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from aiosmtpd.controller import Controller
from django.utils import timezone

from messaging.models import Broadcast, Delivery
from segments.models import Membership, Person, Segment
from tests.conftest import free_port


@dataclass
class Received:
    sender: str
    recipients: list[str]
    message: email.message.EmailMessage

    def part(self, content_type: str) -> str:
        for part in self.message.walk():
            if part.get_content_type() == content_type:
                return part.get_content()
        raise AssertionError(f"no {content_type} part")


@dataclass
class Mailbox:
    """What the SMTP server received; addresses in `refuse` are refused at RCPT TO for good,
    addresses in `greylist` for now (450, try again later); a message to an address in `defer` is answered 421 at the end of its data (the server is
    going away: the message was not accepted and the connection closes)."""

    received: list[Received] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)
    greylist: set[str] = field(default_factory=set)
    defer: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return "550 5.1.1 No such user here"
        if address in self.greylist:
            return "450 4.2.0 Greylisted, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.defer & set(envelope.rcpt_tos):
            return "421 4.3.0 Service shutting down"
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"

    def to(self, address: str) -> Received:
        found = [r for r in self.received if address in r.recipients]
        assert len(found) == 1, f"{len(found)} messages to {address}"
        return found[0]


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[tuple[Mailbox, int]]:
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield mailbox, port
    controller.stop()


@pytest.fixture
def mailbox(smtp_server, settings) -> Mailbox:
    """Broadcasts go to the real SMTP server for this test; its mailbox starts empty."""
    mailbox, port = smtp_server
    mailbox.received.clear()
    mailbox.refuse.clear()
    mailbox.greylist.clear()
    mailbox.defer.clear()
    settings.MAILERS = {
        **settings.MAILERS,
        "broadcasts": {
            "BACKEND": "messaging.mail.BroadcastSMTPBackend",
            "OPTIONS": {"host": "127.0.0.1", "port": port, "use_tls": False, "timeout": 10},
        },
    }
    settings.MESSAGING_SEND_RATE = 0
    return mailbox


def make_person(account, customer_id, email_address, **attributes) -> Person:
    now = timezone.now()
    with account:
        return Person.objects.create(
            customer_id=customer_id, email=email_address, attributes=attributes,
            attribute_times=dict.fromkeys(attributes, 1.0), created_at=now, updated_at=now,
        )  # fmt: skip


def make_segment(account, people: list[Person], name: str = "Readers") -> Segment:
    now = timezone.now()
    with account:
        segment = Segment.objects.create(
            name=name, kind=Segment.Kind.MANUAL, member_count=len(people)
        )
        Membership.objects.bulk_create(
            Membership(segment=segment, person=person, entered_at=now) for person in people
        )
        return segment


def make_broadcast(account, segment: Segment | None, **fields) -> Broadcast:
    values = {
        "name": "November news",
        "subject": 'Hello {{ customer.first_name | default: "there" }}',
        "from_email": "Acme <news@acme.example>",
        "body": '# News for {{ customer.first_name | default: "you" }}\n\n'
        "Your plan: **{{ customer.plan }}**. [Read more](https://acme.example/news?a=1&b=2)",
        "segment": segment,
        **fields,
    }
    with account:
        return Broadcast.objects.create(**values)


@pytest.fixture
def readers(cast) -> list[Person]:
    return [
        make_person(cast.acme, "ann-1", "ann@example.com", first_name="Ann", plan="pro"),
        make_person(cast.acme, "bob-2", "bob@example.com", first_name="<Bob>", plan="free"),
        make_person(cast.acme, "cat-3", "cat@example.com", plan="team"),
    ]


def sent_delivery(account, person: Person, broadcast: Broadcast | None = None) -> Delivery:
    """A delivery as the sender leaves it: sent, with its Message-ID and `sent` event."""
    from messaging.links import new_message_id

    with account:
        if broadcast is None:
            broadcast = Broadcast.objects.create(
                name="Sent", subject="Hi", from_email="news@acme.example", body="Hi",
                state=Broadcast.State.SENT, recipients=1, sent=1,
            )  # fmt: skip
        now = timezone.now()
        delivery = Delivery.objects.create(
            broadcast=broadcast, person=person, email=person.email, state="sent", sent_at=now,
            claimed_at=now,
        )  # fmt: skip
        delivery.message_id = new_message_id(delivery.pk, str(account.pk))
        delivery.save()
        return delivery


# The ingestion fixtures: recipients' links and webhooks go through the spool.
from tests.ingest.conftest import acme_key, drain, globex_key, spool  # noqa: E402, F401
