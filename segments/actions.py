"""Changes made to people from the dashboard, each recorded in the audit log."""

import time

from django.db import transaction
from django.utils import timezone

from accounts.models import AuditEntry, User
from maintenance.actions import erase_person_traces
from segments import membership
from segments.models import Person, Suppression


def changing_attributes(person: Person) -> None:
    """Before an edit of the person's attributes: take the account's writer lock, which the
    drain and imports hold while they read, change and write people (so that none of them
    writes back what it read before this edit, and the batches after it read it), and read
    the attributes again under it (the page's copy may be older than a batch since)."""
    membership.lock_account()
    person.refresh_from_db(fields=["attributes", "attribute_times"])


def attribute_changed(person: Person, name: str) -> None:
    """After the edit: the segments whose rules read the attribute, for this person."""
    membership.update_touched({person.pk: {f"attribute:{name}"}}, membership.Cause.MANUAL)


@transaction.atomic
def set_attribute(person: Person, actor: User, name: str, value: object) -> None:
    changing_attributes(person)
    old = person.attributes.get(name)
    person.attributes[name] = value
    # Stamped now: a later change from ingestion wins, an older replayed one does not.
    person.attribute_times[name] = time.time()
    person.updated_at = timezone.now()
    person.save(update_fields=["attributes", "attribute_times", "updated_at"])
    attribute_changed(person, name)
    AuditEntry.record(actor, "person.attribute_set", person.label, name=name, old=old, new=value)


@transaction.atomic
def delete_attribute(person: Person, actor: User, name: str) -> None:
    changing_attributes(person)
    old = person.attributes.pop(name, None)
    person.attribute_times[name] = time.time()
    person.updated_at = timezone.now()
    person.save(update_fields=["attributes", "attribute_times", "updated_at"])
    attribute_changed(person, name)
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
