"""Changes made to people from the dashboard, each recorded in the audit log."""

import time

from django.db import transaction
from django.utils import timezone

from accounts.models import AuditEntry, User
from maintenance.actions import erase_person_traces
from segments import membership
from segments.models import Person, Suppression


@transaction.atomic
def set_attribute(person: Person, actor: User, name: str, value: object) -> None:
    old = person.attributes.get(name)
    person.attributes[name] = value
    # Stamped now: a later change from ingestion wins, an older replayed one does not.
    person.attribute_times[name] = time.time()
    person.updated_at = timezone.now()
    person.save(update_fields=["attributes", "attribute_times", "updated_at"])
    AuditEntry.record(actor, "person.attribute_set", person.label, name=name, old=old, new=value)


@transaction.atomic
def delete_attribute(person: Person, actor: User, name: str) -> None:
    old = person.attributes.pop(name, None)
    person.attribute_times[name] = time.time()
    person.updated_at = timezone.now()
    person.save(update_fields=["attributes", "attribute_times", "updated_at"])
    AuditEntry.record(actor, "person.attribute_deleted", person.label, name=name, old=old)


@transaction.atomic
def delete_person(person: Person, actor: User, *, suppress: bool) -> None:
    """Delete the person with their events, summaries, deliveries and memberships (the database
    cascades; memberships by a trigger), their never-merged anonymous events and the dead
    letters naming them; with `suppress`, ingestion will not create them again from the same
    identifiers."""
    label, identifiers = person.label, {"id": person.customer_id, "email": person.email}
    if suppress:
        for kind, value in identifiers.items():
            if value:
                Suppression.objects.get_or_create(
                    kind=kind, value=value.lower() if kind == "email" else value,
                    defaults={"created_by": actor.email},
                )  # fmt: skip
    # Memberships go by a trigger, not a constraint: hold the lock their writers hold, so that
    # no recompute running now can add a membership for this person after it.
    membership.lock_account()
    erase_person_traces(person)  # what the database's cascade does not reach
    person.delete()
    action = "person.suppressed" if suppress else "person.deleted"
    AuditEntry.record(actor, action, label, **{k: v for k, v in identifiers.items() if v})
