"""Retention changes, each recorded in the account's audit log."""

from django.db import transaction
from django.utils import timezone

from accounts.models import Account, AuditEntry, User, control_plane
from maintenance.models import RetentionPolicy


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


def _readable(changes: dict) -> dict:
    return {name: {"old": old, "new": new} for name, (old, new) in changes.items()}
