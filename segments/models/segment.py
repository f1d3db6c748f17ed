"""Segments: a rule tree (or a hand-kept list) and its materialised members.

Account plane. Members are written set-wise by segments/membership.py, from a rule save, from
every drained ingestion batch and from the periodic sweep; the models here are what the
dashboard reads.
"""

from django.contrib.postgres.fields import ArrayField, BigIntegerRangeField
from django.contrib.postgres.indexes import GistIndex
from django.db import models
from django.db.models import Func, Value
from django.utils import timezone

from segments.models.people import Person


class SegmentQuerySet(models.QuerySet):
    def rule_based(self) -> "SegmentQuerySet":
        return self.filter(kind=Segment.Kind.RULES, rules__isnull=False)

    def time_dependent(self) -> "SegmentQuerySet":
        """Segments whose rules change with the clock alone ("within the last 7 days")."""
        return self.rule_based().filter(time_dependent=True)


class Segment(models.Model):
    class Kind(models.TextChoices):
        RULES = "rules", "Rule-based"
        MANUAL = "manual", "Manual"

    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.RULES)
    # The validated rule tree as segments/rules.py stores it; null for manual segments.
    rules = models.JSONField(null=True, blank=True)
    # Derived from the rules when they are saved, so that the sweep and the dependency order
    # need no parsing: does the rule read the clock, and which segments does it read?
    time_dependent = models.BooleanField(default=False)
    depends_on = models.JSONField(default=list, blank=True)
    # What the rule reads (rules.reads: attribute and event names, segments…), so that the
    # drain asks the segment only about people whose changes touched one of them. Null for
    # rules saved before it was kept: those are read from the rule itself.
    reads = models.JSONField(null=True, blank=True)
    member_count = models.PositiveIntegerField(default=0)
    created_by = models.CharField(max_length=254, blank=True)  # an email, as a plain value
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    recomputed_at = models.DateTimeField(null=True, blank=True)

    objects = SegmentQuerySet.as_manager()

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_manual(self) -> bool:
        return self.kind == self.Kind.MANUAL


class SegmentVersion(models.Model):
    """One saved state of a segment's definition: who changed what, and when."""

    segment = models.ForeignKey(Segment, on_delete=models.DB_CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    rules = models.JSONField(null=True, blank=True)
    changed_by = models.CharField(max_length=254, blank=True)  # an email, as a plain value
    changed_at = models.DateTimeField(default=timezone.now)
    summary = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(fields=["segment", "number"], name="segment_version_unique")
        ]

    def __str__(self) -> str:
        return f"{self.segment_id} v{self.number}"


class Membership(models.Model):
    pk = models.CompositePrimaryKey("segment_id", "person_id")
    # No foreign-key constraints here nor on MembershipChange: their per-row checks lock every
    # referenced person row and cost more than the writes themselves (a first computation of
    # 125,000 members spent 8 of its 10 seconds in them). Deleting people or segments removes
    # their rows by statement-level triggers instead (migration 0006), and every writer of
    # these tables holds the account's writer lock, which person deletions take too.
    segment = models.ForeignKey(
        Segment, on_delete=models.DO_NOTHING, related_name="memberships", db_constraint=False,
        db_index=False,  # the primary key starts with it
    )  # fmt: skip
    person = models.ForeignKey(
        Person, on_delete=models.DO_NOTHING, related_name="memberships", db_constraint=False,
        # No index by person either (migration 0015): every membership written paid for one at
        # a random place, and nothing needs it. A person's segments are read by visiting each
        # segment's range of the primary key (the join with segments does), and so are a
        # deleted person's memberships (the trigger joins segments too).
        db_index=False,
    )  # fmt: skip
    entered_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.person_id} in {self.segment_id}"


class MembershipChange(models.Model):
    """A person entering or leaving a segment, and what caused it."""

    class Cause(models.TextChoices):
        RULE = "rule", "Rule saved"
        INGEST = "ingest", "New data"
        SWEEP = "sweep", "Time passed"
        MANUAL = "manual", "Added or removed by hand"
        IMPORT = "import", "CSV upload"
        API = "api", "Track API"

    # Constraint-free like Membership's; the two indexes below lead with these columns.
    segment = models.ForeignKey(
        Segment, on_delete=models.DO_NOTHING, related_name="changes", db_constraint=False,
        db_index=False,
    )  # fmt: skip
    person = models.ForeignKey(
        Person, on_delete=models.DO_NOTHING, related_name="segment_changes", db_constraint=False,
        db_index=False,
    )  # fmt: skip
    entered = models.BooleanField()  # false: the person left
    at = models.DateTimeField()
    cause = models.CharField(max_length=10, choices=Cause.choices)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["segment", "-at"], name="membershipchange_segment_at"),
            models.Index(fields=["person", "-at"], name="membershipchange_person_at"),
        ]

    def __str__(self) -> str:
        return f"{self.person_id} {'entered' if self.entered else 'left'} {self.segment_id}"


class MembershipChangeSet(models.Model):
    """Many people entering or leaving a segment at once (a rule saved, a sweep), as one record:
    the counts here, the people in sorted chunks of ids (MembershipChangeChunk). Writing a
    MembershipChange row per person cost most of such a recompute (678,381 entrants took 38 s).
    A deleted person's id may stay in a chunk; readers join people, so it shows nowhere."""

    segment = models.ForeignKey(
        Segment, on_delete=models.DB_CASCADE, related_name="change_sets",
        db_index=False,  # changeset_segment_at starts with it
    )  # fmt: skip
    at = models.DateTimeField()
    cause = models.CharField(max_length=10, choices=MembershipChange.Cause.choices)
    entered = models.PositiveIntegerField()
    exited = models.PositiveIntegerField()

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["segment", "-at"], name="changeset_segment_at")]

    def __str__(self) -> str:
        return f"{self.entered} entered and {self.exited} left {self.segment_id}"


def ids_span() -> Func:
    """A chunk's first and last person as one range of ids."""
    return Func(
        "first_person", "last_person", Value("[]"), function="int8range",
        output_field=BigIntegerRangeField(),
    )  # fmt: skip


class MembershipChangeChunk(models.Model):
    """Up to CHUNK ids of a change set's entrants (or leavers), sorted: a person's history
    finds their chunk by its first and last id and looks inside one small array only."""

    pk = models.CompositePrimaryKey("change_set_id", "entered", "first_person")
    change_set = models.ForeignKey(
        MembershipChangeSet, on_delete=models.DB_CASCADE, related_name="chunks",
        db_index=False,  # the primary key starts with it
    )  # fmt: skip
    entered = models.BooleanField()
    first_person = models.BigIntegerField()
    last_person = models.BigIntegerField()
    people = ArrayField(models.BigIntegerField())

    class Meta:
        indexes = [
            # A person's history finds the chunks whose id range holds them, one per change set
            # (and direction), without reading the others.
            GistIndex(ids_span(), name="changechunk_span"),
        ]

    def __str__(self) -> str:
        return f"{self.change_set_id}: {self.first_person}…{self.last_person}"


class SegmentSize(models.Model):
    """The segment's size at the end of each day it changed: the size-over-time chart."""

    pk = models.CompositePrimaryKey("segment_id", "day")
    segment = models.ForeignKey(Segment, on_delete=models.DB_CASCADE, related_name="sizes")
    day = models.DateField()
    size = models.PositiveIntegerField()

    def __str__(self) -> str:
        return f"{self.segment_id} on {self.day}: {self.size}"
