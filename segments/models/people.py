"""An account's people and what they did. Account plane: these tables live in each account's
schema and are written in bulk by the ingestion drain (ingest/apply.py)."""

from django.contrib.postgres.indexes import GinIndex, OpClass
from django.db import models
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Lower
from django.db.models.lookups import IsNull


class PersonQuerySet(models.QuerySet):
    def search(self, text: str) -> "PersonQuerySet":
        """An email (or its beginning, whatever its case) when the text has an @, else a
        customer id or its beginning too; both use the identifiers' unique indexes."""
        text = text.strip()
        if not text:
            return self
        people = self.alias(email_lower=Lower("email"))
        if "@" in text:
            return people.filter(email_lower__startswith=text.lower())
        return people.filter(
            models.Q(customer_id__startswith=text) | models.Q(email_lower__startswith=text.lower())
        )

    def with_emails(self, emails: list[str]) -> "PersonQuerySet":
        """People with these email addresses, in any case (the unique index on lower(email))."""
        lowered = [email.strip().lower() for email in emails]
        return self.alias(email_lower=Lower("email")).filter(email_lower__in=lowered)

    def with_attribute(self, name: str, value: str) -> "PersonQuerySet":
        """People whose attribute equals the value, as text or as the number or boolean it
        spells (containment, so the GIN index answers)."""
        candidates: list[object] = [value]
        lowered = value.strip().lower()
        if lowered in ("true", "false"):
            candidates.append(lowered == "true")
        try:
            number = float(value)
            candidates.append(int(number) if number.is_integer() else number)
        except ValueError:
            pass
        condition = models.Q()
        for candidate in candidates:
            condition |= models.Q(attributes__contains={name: candidate})
        return self.filter(condition)

    def subscription(self, state: str) -> "PersonQuerySet":
        if state == "subscribed":
            return self.filter(unsubscribed=False)
        if state == "unsubscribed":
            return self.filter(unsubscribed=True)
        return self


class Person(models.Model):
    # Identifiers as the Track API knows them: the customer's own id and the email address.
    customer_id = models.CharField(max_length=150, null=True, blank=True)
    email = models.CharField(max_length=254, null=True, blank=True)
    attributes = models.JSONField(default=dict)
    # When each attribute was last set (unix seconds of the change, `_timestamp` or arrival):
    # a change older than what is stored loses, so replays and racing updates converge.
    attribute_times = models.JSONField(default=dict)
    unsubscribed = models.BooleanField(default=False)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    objects = PersonQuerySet.as_manager()

    class Meta:
        constraints = [
            # text_pattern_ops: the same index answers lookups and prefix search (the people
            # list) whatever the collation, so people need no second index on customer_id.
            # Partial: a person known by their email only (everyone an import by email
            # creates) writes no entry. Every lookup and prefix search names a value, which the
            # planner knows cannot be NULL.
            models.UniqueConstraint(
                fields=["customer_id"],
                name="person_customer_id_unique",
                opclasses=["text_pattern_ops"],
                condition=models.Q(customer_id__isnull=False),
            ),
            # Likewise for emails, compared without case: lookups by the Track API and
            # imports, and prefix search in the people list (which so finds "Fay@Example.com"
            # from "fay@" too). Not partial: the planner knows how lower(email) is spread only
            # from this index's statistics, and it ignores a partial index's. Made partial, an
            # email prefix search took a second at 1,000,000 people (the newest-first scan,
            # filtered, instead of this index; see segments 0016).
            models.UniqueConstraint(
                OpClass(Lower("email"), name="text_pattern_ops"), name="person_email_unique"
            ),
        ]
        indexes = [
            # Anonymous activity is merged into the person whose anonymous_id it carries.
            # Partial: a person without one is not in it, so changing their attributes (never
            # a HOT update, see the GIN index) writes one index fewer.
            models.Index(
                KeyTextTransform("anonymous_id", "attributes"),
                name="person_anonymous_id",
                condition=models.Q(IsNull(KeyTextTransform("anonymous_id", "attributes"), False)),
            ),
            # The people list, newest first (scanned backward) or oldest first, and
            # attribute-value search through containment (prefix search on both identifiers
            # uses the unique indexes above). Ascending: new people go to its right end,
            # where the B-tree appends to the page it last wrote and splits pages 90/10; a
            # descending one took every new person at its left end, split pages in halves and
            # was twice the size.
            models.Index(fields=["created_at", "id"], name="person_created"),
            # A large pending list: new entries are appended and merged in the background
            # (autovacuum), so bulk writes do not pay for the GIN tree row by row.
            GinIndex(
                fields=["attributes"],
                name="person_attributes",
                opclasses=["jsonb_path_ops"],
                fastupdate=True,
                gin_pending_list_limit=65536,
            ),
        ]

    def __str__(self) -> str:
        return self.customer_id or self.email or f"person {self.pk}"

    @property
    def label(self) -> str:
        return self.email or self.customer_id or f"Person {self.pk}"


class Event(models.Model):
    class Kind(models.TextChoices):
        EVENT = "event"
        PAGE = "page"
        SCREEN = "screen"

    # No foreign-key constraint (as on memberships): its deferred check locked the person row
    # of every event a batch inserted, a third of the time of inserting them. A statement
    # trigger deletes the events of deleted people (migration 0012); only the drain and
    # imports insert events, for people they hold under the account's writer lock.
    person = models.ForeignKey(
        Person, null=True, on_delete=models.DO_NOTHING, related_name="events",
        db_constraint=False, db_index=False,  # event_person_time_name starts with it
    )  # fmt: skip
    # Set on events sent before the person was known; merged into the person later.
    anonymous_id = models.CharField(max_length=150, null=True, blank=True)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.EVENT)
    name = models.CharField(max_length=255)
    data = models.JSONField(default=dict)
    timestamp = models.DateTimeField()
    received_at = models.DateTimeField()
    # The client's event id (Customer.io) or messageId (Segment), else one given at acceptance:
    # applying the same spooled item twice inserts nothing the second time (event_dedupe_key).
    dedupe_key = models.CharField(max_length=100)

    class Meta:
        constraints = [
            # A constraint rather than unique=True on the field, which on PostgreSQL also gets
            # a second index on the column (varchar_pattern_ops, for LIKE) that nothing asks:
            # every event paid for it, about a sixth of the drain's COPY of events (segments
            # 0019).
            models.UniqueConstraint(fields=["dedupe_key"], name="event_dedupe_key"),
        ]
        indexes = [
            # With the name in it, the drain counts a batch's people's events of a name in a
            # window from the index alone.
            models.Index(
                fields=["person", "-timestamp"], include=["name"], name="event_person_time_name"
            ),
            # Segments count events of a name in a window from this index alone (index-only
            # scans: the person is in it), never touching the wide rows.
            models.Index(
                fields=["name", "timestamp"], include=["person"], name="event_name_time_person"
            ),
            models.Index(
                fields=["anonymous_id"],
                name="event_anonymous",
                condition=models.Q(person__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} at {self.timestamp:%Y-%m-%d %H:%M}"


class ActivitySummary(models.Model):
    """Per person and event name: how often, first and last time."""

    pk = models.CompositePrimaryKey("person_id", "name")
    # No foreign-key constraint, as on events (the same trigger deletes the summaries).
    person = models.ForeignKey(
        Person, on_delete=models.DO_NOTHING, related_name="activity",
        db_constraint=False, db_index=False,  # the primary key starts with it
    )  # fmt: skip
    name = models.CharField(max_length=255)
    count = models.PositiveIntegerField()
    first_at = models.DateTimeField()
    last_at = models.DateTimeField()

    class Meta:
        indexes = [
            # Segments read everyone's count of one name. `count` is not in the index, so
            # the drain's upserts (which change only count and times) are HOT updates.
            models.Index(fields=["name", "person"], name="activity_name_person"),
        ]

    def __str__(self) -> str:
        return f"{self.name}: {self.count} times"


class EventDay(models.Model):
    """Events received per day, kept by the drain so the dashboard chart never scans events."""

    day = models.DateField(primary_key=True)
    count = models.PositiveBigIntegerField()

    def __str__(self) -> str:
        return f"{self.day}: {self.count}"


class Suppression(models.Model):
    """An identifier that ingestion must not create a person for again."""

    class Kind(models.TextChoices):
        ID = "id"
        EMAIL = "email"

    kind = models.CharField(max_length=10, choices=Kind.choices)
    value = models.CharField(max_length=254)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=254, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["kind", "value"], name="suppression_unique")]

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}"
