"""Writes to the status module. Each one is atomic; its notices go into the outbox in the
same transaction, and the snapshot is republished after the commit."""

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from status.models import (
    Component,
    ComponentStatus,
    ComponentStatusChange,
    Impact,
    Incident,
    IncidentKind,
    IncidentStatus,
    IncidentUpdate,
    Subscriber,
    SubscriberMode,
)
from status.notifications import (
    enqueue_component_webhooks,
    enqueue_confirmation,
    enqueue_incident_notifications,
)
from status.snapshot import publish_after_commit

MAINTENANCE_STARTED = (
    "Scheduled maintenance is currently in progress. We will provide updates as necessary."
)
MAINTENANCE_COMPLETED = "The scheduled maintenance has been completed."


def _apply_component_statuses(
    incident: Incident, statuses: dict[Component, str], at: datetime
) -> tuple[list[dict], list[ComponentStatusChange]]:
    affected, changes = [], []
    for component, new_status in statuses.items():
        old_status = component.status
        change = component.set_status(new_status, at=at, incident=incident)
        if change:
            changes.append(change)
        incident.components.add(component)
        affected.append(
            {
                "code": component.code,
                "name": component.name,
                "old_status": old_status,
                "new_status": new_status,
            }
        )
    return affected, changes


@transaction.atomic
def post_update(
    incident: Incident,
    *,
    status: str,
    body: str,
    component_statuses: dict[Component, str] | None = None,
    display_at: datetime | None = None,
    deliver_notifications: bool = True,
    now: datetime | None = None,
) -> IncidentUpdate:
    """Add a timeline entry, move the lifecycle and the components it names.

    `display_at` backdates what visitors see; component changes are logged at that time too,
    so the uptime bars show when things actually broke.
    """
    now = now or timezone.now()
    display_at = display_at or now
    affected, changes = _apply_component_statuses(incident, component_statuses or {}, display_at)
    incident.record_status(status, display_at)
    incident.updated_at = max(incident.updated_at, now)
    incident.save(update_fields=["status", "monitoring_at", "resolved_at", "updated_at"])
    update = IncidentUpdate.objects.create(
        incident=incident,
        status=status,
        body=body,
        created_at=now,
        updated_at=now,
        display_at=display_at,
        deliver_notifications=deliver_notifications,
        affected_components=affected or None,
    )
    if deliver_notifications:
        enqueue_incident_notifications(incident, update)
        for change in changes:
            enqueue_component_webhooks(change)
    publish_after_commit()
    return update


@transaction.atomic
def open_incident(
    *,
    name: str,
    status: str,
    impact: str,
    body: str,
    component_statuses: dict[Component, str] | None = None,
    affected_accounts: list[str] | None = None,
    display_at: datetime | None = None,
    deliver_notifications: bool = True,
    now: datetime | None = None,
) -> Incident:
    now = now or timezone.now()
    started = display_at or now
    incident = Incident.objects.create(
        kind=IncidentKind.INCIDENT,
        name=name,
        status=status,
        impact=impact,
        affected_accounts=affected_accounts or [],
        created_at=now,
        updated_at=now,
        started_at=started,
        backfilled=started < now and status == IncidentStatus.RESOLVED,
    )
    post_update(
        incident,
        status=status,
        body=body,
        component_statuses=component_statuses,
        display_at=started,
        deliver_notifications=deliver_notifications,
        now=now,
    )
    return incident


@transaction.atomic
def schedule_maintenance(
    *,
    name: str,
    body: str,
    scheduled_for: datetime,
    scheduled_until: datetime,
    components: list[Component],
    affected_accounts: list[str] | None = None,
    auto_start: bool = True,
    auto_complete: bool = True,
    deliver_notifications: bool = True,
) -> Incident:
    now = timezone.now()
    maintenance = Incident.objects.create(
        kind=IncidentKind.MAINTENANCE,
        name=name,
        status=IncidentStatus.SCHEDULED,
        impact=Impact.MAINTENANCE,
        affected_accounts=affected_accounts or [],
        created_at=now,
        updated_at=now,
        started_at=scheduled_for,
        scheduled_for=scheduled_for,
        scheduled_until=scheduled_until,
        auto_start=auto_start,
        auto_complete=auto_complete,
    )
    maintenance.components.set(components)
    post_update(
        maintenance,
        status=IncidentStatus.SCHEDULED,
        body=body,
        deliver_notifications=deliver_notifications,
        now=now,
    )
    return maintenance


def start_maintenance(maintenance: Incident, now: datetime) -> IncidentUpdate:
    statuses = {c: ComponentStatus.UNDER_MAINTENANCE for c in maintenance.components.all()}
    return post_update(
        maintenance,
        status=IncidentStatus.IN_PROGRESS,
        body=MAINTENANCE_STARTED,
        component_statuses=statuses,
        now=now,
    )


def complete_maintenance(maintenance: Incident, now: datetime) -> IncidentUpdate:
    # Only what the maintenance itself put under maintenance goes back to operational.
    statuses = {
        c: ComponentStatus.OPERATIONAL
        for c in maintenance.components.all()
        if c.status == ComponentStatus.UNDER_MAINTENANCE
    }
    return post_update(
        maintenance,
        status=IncidentStatus.COMPLETED,
        body=MAINTENANCE_COMPLETED,
        component_statuses=statuses,
        now=now,
    )


def advance_maintenances(now: datetime) -> list[Incident]:
    """Start maintenance whose time has come and complete maintenance that is over.

    Each transition is its own transaction, and rows are locked with SKIP LOCKED, so two
    workers never start the same window twice.
    """
    moved = []
    for due, transition in (
        ("due_to_start", start_maintenance),
        ("due_to_complete", complete_maintenance),
    ):
        while True:
            with transaction.atomic():
                maintenance = (
                    getattr(Incident.objects, due)(now)
                    .select_for_update(skip_locked=True, of=("self",))
                    .order_by("pk")
                    .first()
                )
                if maintenance is None:
                    break
                transition(maintenance, now)
                moved.append(maintenance)
    return moved


@transaction.atomic
def change_component_status(component: Component, new_status: str) -> ComponentStatusChange | None:
    change = component.set_status(new_status)
    if change:
        enqueue_component_webhooks(change)
        publish_after_commit()
    return change


@transaction.atomic
def save_postmortem(incident: Incident, *, body: str, publish: bool) -> None:
    now = timezone.now()
    incident.postmortem_body = body
    incident.postmortem_updated_at = now
    if publish and incident.postmortem_published_at is None:
        incident.postmortem_published_at = now
    incident.updated_at = now
    incident.save(
        update_fields=[
            "postmortem_body",
            "postmortem_updated_at",
            "postmortem_published_at",
            "updated_at",
        ]
    )
    if incident.postmortem_published_at:
        publish_after_commit()


@transaction.atomic
def subscribe(*, email: str, endpoint: str = "", components: list[Component]) -> Subscriber:
    """Record an unconfirmed subscription and queue the confirmation email.

    Subscribing again with the same address (and URL) reuses the row and sends a new link,
    so the form never tells a visitor whether someone is already subscribed.
    """
    mode = SubscriberMode.WEBHOOK if endpoint else SubscriberMode.EMAIL
    subscriber, _created = Subscriber.objects.get_or_create(
        mode=mode, email=email.strip().lower(), endpoint=endpoint
    )
    if not subscriber.is_confirmed:
        subscriber.components.set(components)
    enqueue_confirmation(subscriber)
    return subscriber


def confirm_subscription(subscriber: Subscriber) -> None:
    subscriber.confirm()


def unsubscribe(subscriber: Subscriber) -> None:
    # The delivery log keeps its rows (subscriber set to null) for staff to read.
    subscriber.delete()
