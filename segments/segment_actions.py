"""Writes to segments that cross models: a definition, its version and its members together.

(Beside segments/actions.py, which holds the people dashboard's writes.)
"""

from datetime import UTC, datetime

from django.db import transaction

from maintenance.retention import kept_days
from segments import membership
from segments.membership import Cause, Change
from segments.models import Membership, Person, Segment, SegmentVersion
from segments.rules import (
    Context,
    Node,
    dump_rule,
    is_time_dependent,
    reads,
    referenced_segments,
)


def rule_context(segment: Segment | None) -> Context:
    """What validating a rule for this segment needs: the account's other segments."""
    others = Segment.objects.exclude(pk=segment.pk) if segment and segment.pk else Segment.objects
    graph = {pk: list(depends) for pk, depends in others.values_list("pk", "depends_on")}
    return Context(segments=graph, own_id=segment.pk if segment else None, kept_days=kept_days())


def describe_change(before: SegmentVersion | None, after: SegmentVersion) -> str:
    if before is None:
        return "created"
    changed = [
        field
        for field in ("name", "description", "rules")
        if getattr(before, field) != getattr(after, field)
    ]
    return "changed " + ", ".join(changed) if changed else "saved without changes"


@transaction.atomic
def save_segment(
    segment: Segment, *, name: str, description: str, rule: Node | None, changed_by: str
) -> Change:
    """Save the definition and a version of it; a rule-based segment is recomputed at once."""
    now = datetime.now(UTC)
    creating = segment.pk is None
    segment.name, segment.description = name, description
    segment.rules = dump_rule(rule) if rule is not None else None
    segment.depends_on = referenced_segments(rule) if rule is not None else []
    segment.time_dependent = rule is not None and is_time_dependent(rule)
    segment.reads = reads(rule) if rule is not None else []
    segment.updated_at = now
    if creating:
        segment.created_by, segment.created_at = changed_by, now
        segment.save()
    else:
        segment.save(
            update_fields=[
                "name", "description", "rules", "depends_on", "time_dependent", "reads",
                "updated_at",
            ]
        )  # fmt: skip
    previous = segment.versions.first()
    version = SegmentVersion(
        segment=segment, number=(previous.number + 1) if previous else 1, name=name,
        description=description, rules=segment.rules, changed_by=changed_by, changed_at=now,
    )  # fmt: skip
    version.summary = describe_change(previous, version)
    version.save()
    if previous and previous.rules == segment.rules and not creating:
        return Change()
    change = membership.recompute(segment, Cause.RULE, now, parallel=True)
    if change.first:
        version.summary += f"; {change.entered:,} entered at once (first computation)"
        version.save(update_fields=["summary"])
    return change


class SegmentInUse(Exception):
    pass


@transaction.atomic
def delete_segment(segment: Segment) -> None:
    readers = [s.name for s in Segment.objects.all() if segment.pk in s.depends_on]
    if readers:
        raise SegmentInUse(f"{', '.join(readers)} read{'s' if len(readers) == 1 else ''} it")
    membership.lock_account()
    segment.delete()


@transaction.atomic
def change_members(
    segment: Segment, person_ids: list[int], cause: str, *, add: bool = True,
    replace: bool = False,
) -> Change:  # fmt: skip
    """Add, remove or replace the people of a manual segment."""
    return membership.change_members(segment, person_ids, cause, add=add, replace=replace)


def people_by_identifier(values: list[str], id_type: str) -> list[int]:
    """Existing people named by customer id or email (others are skipped)."""
    found: list[int] = []
    for start in range(0, len(values), 10_000):
        chunk = values[start : start + 10_000]
        if id_type == "email":
            people = Person.objects.with_emails(chunk)
        else:
            people = Person.objects.filter(customer_id__in=chunk)
        found += people.values_list("pk", flat=True)
    return found


def memberships_of(person: Person):
    """A person's segments with when they entered, for the profile."""
    return Membership.objects.filter(person=person).select_related("segment")
