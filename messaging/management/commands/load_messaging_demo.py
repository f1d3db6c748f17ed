"""Demo data for messaging: readers in a segment, a topic, and a broadcast sent six hours
ago through the real sender (into the local mail sink, var/mail) with opens, clicks, a bounce
and an unsubscribe since. Running it again changes nothing."""

import random
from datetime import timedelta

from django.core.management.base import BaseCommand
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import Account
from messaging import events, sending
from messaging.models import Broadcast, Topic
from segments.membership import Cause, change_members
from segments.models import Person, Segment

BROADCAST_NAME = "November newsletter"
FIRST_NAMES = [
    "Ada", "Ben", "Cleo", "Dev", "Elif", "Finn", "Gia", "Hugo", "Ines", "Jon", "Kemal", "Lea",
    "Maya", "Nils", "Omar", "Pia", "Quinn", "Rosa", "Sami", "Tess", "Uma", "Viktor", "Wen",
    "Xavi", "Yara", "Zoe", "Ari", "Bea", "Cai", "Dina", "Emil", "Fay", "Gus", "Hana", "Ivo",
    "Juno", "Kai", "Lina", "Milo", "Nora",
]  # fmt: skip
BODY = """Hi {{ customer.first_name | default: "there" }},

Here is what changed at **Acme** this month:

- Faster exports for the {{ customer.plan | default: "free" }} plan
- A new [status page](https://status.acme.example/) you can subscribe to

[Read the full changelog](https://acme.example/changelog)

The Acme team
"""
BACKDATE = timedelta(hours=6)


class Command(BaseCommand):
    help = "Load the messaging demo into acme once (readers, a topic, a sent broadcast)."

    def handle(self, *args, **options) -> None:
        account = Account.objects.filter(slug="acme").first()
        if account is None:
            return
        with account:
            if Broadcast.objects.filter(name=BROADCAST_NAME).exists():
                return
            broadcast = self.prepare(account)
            sending.send_broadcast(broadcast, throttle=sending.Throttle(0))
            self.backdate(broadcast)
            self.record_reactions(broadcast)
        self.stdout.write(f"Sent the demo broadcast “{BROADCAST_NAME}” in acme")

    @transaction.atomic
    def prepare(self, account: Account) -> Broadcast:
        now = timezone.now()
        readers = []
        for n, name in enumerate(FIRST_NAMES, start=1):
            person = Person.objects.filter(customer_id=f"demo-reader-{n:02}").first()
            if person is None:
                attributes = {"first_name": name, "plan": ["free", "pro", "team"][n % 3]}
                email = f"{name.lower()}.reader@example.com"
                attributes["email"] = email
                person = Person.objects.create(
                    customer_id=f"demo-reader-{n:02}", email=email, attributes=attributes,
                    attribute_times=dict.fromkeys(attributes, now.timestamp()),
                    created_at=now - timedelta(days=40 - n), updated_at=now,
                )  # fmt: skip
            readers.append(person.pk)
        segment, _ = Segment.objects.get_or_create(
            name="Newsletter readers",
            defaults={"kind": Segment.Kind.MANUAL, "description": "People who asked for news."},
        )
        change_members(segment, readers, Cause.MANUAL, add=True)
        topic, _ = Topic.objects.get_or_create(
            name="Product news", defaults={"description": "What changed in the product."}
        )
        Topic.objects.get_or_create(name="Tips", defaults={"description": "How to get more done."})
        return Broadcast.objects.create(
            name=BROADCAST_NAME,
            subject='What\'s new at Acme, {{ customer.first_name | default: "friend" }}',
            from_email="Acme News <news@acme.example>",
            body=BODY,
            segment=segment,
            topic=topic,
            state=Broadcast.State.SCHEDULED,
            send_at=now,
            created_by="owner@acme.example",
        )

    def backdate(self, broadcast: Broadcast) -> None:
        """Move the sending six hours back, so the demo has a day's worth of reactions."""
        with transaction.atomic(), connection.cursor() as cursor:
            for statement in (
                """UPDATE messaging_delivery SET created_at = created_at - %(by)s,
                       claimed_at = claimed_at - %(by)s, sent_at = sent_at - %(by)s
                   WHERE broadcast_id = %(id)s""",
                "UPDATE messaging_deliveryevent SET at = at - %(by)s WHERE broadcast_id = %(id)s",
                "UPDATE messaging_broadcasthour SET hour = hour - %(by)s WHERE broadcast_id = %(id)s",
                """UPDATE messaging_broadcast SET send_at = send_at - %(by)s,
                       started_at = started_at - %(by)s, finished_at = finished_at - %(by)s,
                       created_at = created_at - %(by)s - interval '1 hour'
                   WHERE id = %(id)s""",
            ):
                cursor.execute(statement, {"by": BACKDATE, "id": broadcast.pk})

    def record_reactions(self, broadcast: Broadcast) -> None:
        """Delivered, opened, clicked over the hours since; one bounce, one unsubscribe."""
        rng = random.Random(2015)
        sent = list(broadcast.deliveries.filter(state="sent").order_by("pk"))
        started = timezone.now() - BACKDATE
        items = []
        for index, delivery in enumerate(sent):
            at = started.timestamp() + rng.uniform(5, 60)
            if index == 3:
                items.append(events.event_item(delivery.pk, "bounced", at, {
                    "source": "webhook:mailgun", "reason": "bounced",
                    "mta_response": "550 5.1.1 The email account does not exist",
                }))  # fmt: skip
                continue
            items.append(events.event_item(delivery.pk, "delivered", at, {"source": "demo"}))
            if rng.random() < 0.6:
                at += rng.expovariate(1 / 3600)
                items.append(events.event_item(delivery.pk, "opened", at, {"source": "pixel"}))
                if rng.random() < 0.4:
                    at += rng.uniform(10, 600)
                    items.append(events.event_item(delivery.pk, "clicked", at, {
                        "source": "link", "url": "https://acme.example/changelog",
                    }))  # fmt: skip
            if index == 7:
                items.append(events.unsubscribe_item(delivery.pk, None, at + 30, "one-click"))
        now = timezone.now().timestamp()
        items = [{**item, "at": min(item["at"], now)} for item in items]
        with transaction.atomic():
            events.record_items(sorted(items, key=lambda item: item["at"]))
