"""Broadcasts, their deliveries and what happened to each copy. Account plane.

Table shapes other code relies on (segment conditions on email activity, retention):

- `messaging_delivery`: one row per message (or per skipped recipient) with its current
  `state` and the first time it reached each state (`sent_at`, `delivered_at`, `opened_at`,
  `clicked_at`, `bounced_at`, `spammed_at`, `failed_at`, `unsubscribed_at`); `created_at` is
  when it was queued. Ids grow with `created_at`, which the delivery log relies on.
- `messaging_deliveryevent`: one row per thing that happened (`kind` is a Delivery state or
  `deferred` / `converted`), with `person_id` and `broadcast_id` copied from the delivery so
  "people who opened at least 3 times in the last 30 days" is one index range per person:
  `(person_id, kind, at)`; set-wise the other way round: `(kind, at)`.
"""

from datetime import datetime

from django.db import models
from django.utils import timezone

from accounts.models import ACCOUNT
from segments.models import Person, Segment


class Topic(models.Model):
    """A kind of message people can opt out of without unsubscribing from everything."""

    name = models.CharField(max_length=100, unique=True)
    description = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    planes = {ACCOUNT}

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class TopicOptOut(models.Model):
    pk = models.CompositePrimaryKey("person_id", "topic_id")
    person = models.ForeignKey(Person, on_delete=models.DB_CASCADE, related_name="topic_opt_outs")
    topic = models.ForeignKey(Topic, on_delete=models.DB_CASCADE, related_name="opt_outs")
    at = models.DateTimeField(default=timezone.now)

    planes = {ACCOUNT}

    def __str__(self) -> str:
        return f"{self.person_id} out of {self.topic_id}"


class BroadcastQuerySet(models.QuerySet):
    def due(self, now) -> "BroadcastQuerySet":
        """Broadcasts the sending worker should work on: scheduled and due, or under way."""
        return self.filter(
            models.Q(state=Broadcast.State.SCHEDULED, send_at__lte=now)
            | models.Q(state=Broadcast.State.SENDING)
        ).order_by("send_at", "id")


class Broadcast(models.Model):
    class State(models.TextChoices):
        DRAFT = "draft", "Draft"
        SCHEDULED = "scheduled", "Scheduled"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        CANCELLED = "cancelled", "Cancelled"

    class Format(models.TextChoices):
        MARKDOWN = "markdown", "Markdown"
        HTML = "html", "HTML"

    name = models.CharField(max_length=200)
    subject = models.CharField(max_length=300)
    from_email = models.CharField(max_length=300)
    reply_to = models.CharField(max_length=254, blank=True)
    body_format = models.CharField(max_length=10, choices=Format.choices, default=Format.MARKDOWN)
    body = models.TextField()
    # The plain-text part; empty means "derived from the body".
    text_body = models.TextField(blank=True)
    segment = models.ForeignKey(
        Segment, null=True, blank=True, on_delete=models.DB_SET_NULL, related_name="broadcasts"
    )
    topic = models.ForeignKey(
        Topic, null=True, blank=True, on_delete=models.DB_SET_NULL, related_name="broadcasts"
    )
    state = models.CharField(max_length=10, choices=State.choices, default=State.DRAFT)
    send_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    created_by = models.CharField(max_length=254, blank=True)  # an email, as a plain value
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    # Counters kept by the sender and by recorded events: how many deliveries ever reached
    # each state (opens and clicks count people, not repeats), so the page never counts rows.
    recipients = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    sent = models.PositiveIntegerField(default=0)
    delivered = models.PositiveIntegerField(default=0)
    opened = models.PositiveIntegerField(default=0)
    clicked = models.PositiveIntegerField(default=0)
    bounced = models.PositiveIntegerField(default=0)
    spammed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    unsubscribed = models.PositiveIntegerField(default=0)

    planes = {ACCOUNT}

    objects = BroadcastQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["state", "send_at"], name="broadcast_state_send_at")]

    def __str__(self) -> str:
        return self.name

    @property
    def is_editable(self) -> bool:
        return self.state in (self.State.DRAFT, self.State.SCHEDULED)


class Delivery(models.Model):
    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        DELIVERED = "delivered", "Delivered"
        OPENED = "opened", "Opened"
        CLICKED = "clicked", "Clicked"
        BOUNCED = "bounced", "Bounced"
        SPAMMED = "spammed", "Marked as spam"
        FAILED = "failed", "Failed"
        UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
        SKIPPED = "skipped", "Skipped"

    broadcast = models.ForeignKey(
        Broadcast, null=True, blank=True, on_delete=models.DB_CASCADE, related_name="deliveries"
    )
    # Null for test sends to an address that is not a person.
    person = models.ForeignKey(
        Person, null=True, blank=True, on_delete=models.DB_CASCADE, related_name="deliveries"
    )
    email = models.CharField(max_length=254)
    state = models.CharField(max_length=12, choices=State.choices, default=State.QUEUED)
    # Why a recipient was skipped (unsubscribed, suppressed, topic, no email), or why it failed.
    reason = models.CharField(max_length=500, blank=True)
    # Given when the delivery is claimed for sending, before the SMTP conversation.
    message_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    is_test = models.BooleanField(default=False)
    # The person's values the placeholders used, so the page shows what was sent.
    values = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    claimed_at = models.DateTimeField(null=True, blank=True)
    # Temporary refusals so far, and when a deferred message may be claimed again.
    attempts = models.SmallIntegerField(db_default=0)
    retry_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    clicked_at = models.DateTimeField(null=True, blank=True)
    bounced_at = models.DateTimeField(null=True, blank=True)
    spammed_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    unsubscribed_at = models.DateTimeField(null=True, blank=True)

    planes = {ACCOUNT}

    class Meta:
        constraints = [
            # One copy per person per broadcast, whatever happens to the sender.
            models.UniqueConstraint(fields=["broadcast", "person"], name="delivery_once"),
        ]
        indexes = [
            models.Index(fields=["person", "-id"], name="delivery_person"),
            models.Index(fields=["state", "-id"], name="delivery_state"),
            models.Index(fields=["broadcast", "-id"], name="delivery_broadcast"),
            models.Index(fields=["broadcast", "state", "id"], name="delivery_broadcast_state"),
            models.Index(fields=["created_at"], name="delivery_created"),
            # A broadcast's few test sends, without walking its other deliveries.
            models.Index(
                fields=["broadcast", "-id"],
                condition=models.Q(is_test=True),
                name="delivery_broadcast_tests",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.email} ({self.state})"

    def record(self, kind: str, at: datetime) -> bool:
        """Move along the timeline (in memory); True the first time it reaches `kind`."""
        column = FIRST_AT.get(kind)
        first = False
        if column:
            current = getattr(self, column)
            first = current is None
            if first or at < current:
                setattr(self, column, at)
        if kind in RANK and RANK[kind] > RANK.get(self.state, 0):
            self.state = kind
        return first

    @property
    def timeline(self) -> list[tuple[str, datetime]]:
        """The first time it reached each state, in order."""
        moments = [("queued", self.created_at)]
        moments += [(kind, getattr(self, column)) for kind, column in FIRST_AT.items()]
        return sorted(((k, at) for k, at in moments if at), key=lambda pair: pair[1])


# A delivery's state is the furthest it got; deferred and converted leave it as it is.
RANK = {
    "queued": 0, "sending": 1, "sent": 2, "delivered": 3, "opened": 4, "clicked": 5,
    "unsubscribed": 6, "bounced": 7, "spammed": 7, "failed": 7, "skipped": 8,
}  # fmt: skip
# The column holding the first time a delivery reached a state; the broadcast counter of the
# same name counts deliveries that got there.
FIRST_AT = {
    "sent": "sent_at", "delivered": "delivered_at", "opened": "opened_at",
    "clicked": "clicked_at", "bounced": "bounced_at", "spammed": "spammed_at",
    "failed": "failed_at", "unsubscribed": "unsubscribed_at",
}  # fmt: skip


class DeliveryEvent(models.Model):
    class Kind(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENT = "sent", "Sent"
        DELIVERED = "delivered", "Delivered"
        DEFERRED = "deferred", "Deferred"
        OPENED = "opened", "Opened"
        CLICKED = "clicked", "Clicked"
        CONVERTED = "converted", "Converted"
        BOUNCED = "bounced", "Bounced"
        SPAMMED = "spammed", "Marked as spam"
        FAILED = "failed", "Failed"
        UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
        SKIPPED = "skipped", "Skipped"

    delivery = models.ForeignKey(Delivery, on_delete=models.DB_CASCADE, related_name="events")
    person = models.ForeignKey(
        Person, null=True, blank=True, on_delete=models.DB_CASCADE, related_name="delivery_events"
    )
    broadcast = models.ForeignKey(
        Broadcast, null=True, blank=True, on_delete=models.DB_CASCADE, related_name="events"
    )
    kind = models.CharField(max_length=12, choices=Kind.choices)
    at = models.DateTimeField()
    # Where it came from and what it said: source (sender, pixel, link, webhook:<esp>,
    # metrics, unsubscribe), url, reason, user agent, the provider's event id.
    detail = models.JSONField(default=dict, blank=True)
    # The provider's event id (or one we make): a replayed webhook records nothing new
    # (deliveryevent_dedupe_key; a constraint, not unique=True, which on PostgreSQL adds a
    # LIKE index that nothing uses: messaging 0004).
    dedupe_key = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001 (unique)

    planes = {ACCOUNT}

    class Meta:
        ordering = ["at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["dedupe_key"], name="deliveryevent_dedupe_key"),
        ]
        indexes = [
            models.Index(fields=["delivery", "at"], name="deliveryevent_delivery"),
            models.Index(fields=["person", "kind", "at"], name="deliveryevent_person_kind"),
            models.Index(fields=["kind", "at"], name="deliveryevent_kind_at"),
            models.Index(fields=["at"], name="deliveryevent_at"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} at {self.at:%Y-%m-%d %H:%M}"


class BroadcastHour(models.Model):
    """Events per broadcast, hour and kind: the broadcast chart never scans events."""

    pk = models.CompositePrimaryKey("broadcast_id", "hour", "kind")
    broadcast = models.ForeignKey(Broadcast, on_delete=models.DB_CASCADE, related_name="hours")
    hour = models.DateTimeField()
    kind = models.CharField(max_length=12)
    count = models.PositiveIntegerField()

    planes = {ACCOUNT}

    def __str__(self) -> str:
        return f"{self.broadcast_id} {self.kind} {self.hour:%Y-%m-%d %H}: {self.count}"
