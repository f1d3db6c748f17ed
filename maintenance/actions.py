"""Retention changes, each recorded in the account's audit log."""

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import Account, AuditEntry, User, control_plane
from ingest.models import DeadLetter
from maintenance.models import RetentionPolicy
from segments.models import Event, Person


def _save_policy(account: Account, actor: User, values: dict[str, int | None]) -> dict:
    """Write the changed fields; return {field: (old, new)} for those that changed."""
    with control_plane(), transaction.atomic():
        policy, _ = RetentionPolicy.objects.select_for_update().get_or_create(account=account)
        changes = {
            name: (getattr(policy, name), value)
            for name, value in values.items()
            if getattr(policy, name) != value
        }
        for name, (_old, new) in changes.items():
            setattr(policy, name, new)
        policy.updated_at, policy.updated_by = timezone.now(), actor.email
        policy.save(update_fields=[*changes, "updated_at", "updated_by"])
    return changes


def set_retention(account: Account, actor: User, values: dict[str, int | None]) -> dict:
    """The account's own, shorter choices (the connection is on the account's schema)."""
    changes = _save_policy(account, actor, values)
    if changes:
        AuditEntry.record(actor, "retention.changed", "data retention", **_readable(changes))
    return changes


def set_retention_limits(account: Account, staff: User, values: dict[str, int | None]) -> dict:
    """Staff ceilings; the account's audit log shows them too, so its owners know."""
    changes = _save_policy(account, staff, values)
    if changes:
        with account:
            AuditEntry.record(
                staff, "retention.limits_changed", "data retention", **_readable(changes)
            )
    return changes


def erase_person_traces(person: Person) -> None:
    """What deleting a person must also remove that no foreign key ties to them: events sent
    under their anonymous id and never merged (older than the merge window), and dead letters
    of this account that name them. The caller deletes the person (the cascade takes events,
    summaries, deliveries, delivery events and memberships) in the same transaction."""
    anonymous_id = person.attributes.get("anonymous_id")
    if anonymous_id not in (None, ""):
        Event.objects.filter(person__isnull=True, anonymous_id=str(anonymous_id)).delete()
    account = connection.tenant
    naming = Q()
    if person.customer_id:
        naming |= Q(payload__person__id=person.customer_id)
    if person.email:
        naming |= Q(payload__person__email=person.email.lower())
        naming |= Q(payload__attributes__email=person.email.lower())
    if naming and isinstance(account, Account):
        with control_plane():
            DeadLetter.objects.filter(naming, account_id=account.pk).delete()


def _readable(changes: dict) -> dict:
    return {name: {"old": old, "new": new} for name, (old, new) in changes.items()}
