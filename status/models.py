"""The status module's control-plane rows: components, incidents, subscribers, the outbox.

Everything here lives in `public`. Accounts are referred to by slug (plain values, no foreign
key across planes), so an incident that concerns some accounts survives an account move.
Public identifiers are Statuspage-style 12-character base36 codes, never primary keys.
"""

import secrets
from datetime import datetime, timedelta

from django.db import models
from django.db.models import Q
from django.utils import timezone

BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def new_code() -> str:
    return "".join(secrets.choice(BASE36) for _ in range(12))


class ComponentStatus(models.TextChoices):
    OPERATIONAL = "operational", "Operational"
    DEGRADED_PERFORMANCE = "degraded_performance", "Degraded performance"
    PARTIAL_OUTAGE = "partial_outage", "Partial outage"
    MAJOR_OUTAGE = "major_outage", "Major outage"
    UNDER_MAINTENANCE = "under_maintenance", "Under maintenance"


# How bad a status is, for "the worst of" roll-ups; maintenance is planned, so it ranks below
# any unplanned trouble.
SEVERITY = {
    ComponentStatus.OPERATIONAL: 0,
    ComponentStatus.UNDER_MAINTENANCE: 1,
    ComponentStatus.DEGRADED_PERFORMANCE: 2,
    ComponentStatus.PARTIAL_OUTAGE: 3,
    ComponentStatus.MAJOR_OUTAGE: 4,
}


def worst_status(statuses: list[str]) -> str:
    return max(statuses, key=lambda status: SEVERITY[status], default=ComponentStatus.OPERATIONAL)


class Component(models.Model):
    code = models.CharField(max_length=12, unique=True, default=new_code, editable=False)
    # Stable name for code (signal providers register against it); the display name may change.
    key = models.SlugField(max_length=60, unique=True)
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    status = models.CharField(
        max_length=24, choices=ComponentStatus.choices, default=ComponentStatus.OPERATIONAL
    )
    position = models.PositiveIntegerField(default=0)
    is_group = models.BooleanField(default=False)
    group = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="children",
        limit_choices_to={"is_group": True},
    )
    showcase = models.BooleanField(default=True, help_text="Show the 90-day uptime bar.")
    only_show_if_degraded = models.BooleanField(default=False)
    # Uptime is counted from this day; before it the bar shows "no data".
    start_date = models.DateField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["position", "name"]

    def __str__(self) -> str:
        return self.name

    def set_status(
        self, new_status: str, *, at: datetime | None = None, incident: "Incident | None" = None
    ) -> "ComponentStatusChange | None":
        """Change the status and log it (the uptime bars are derived from the log)."""
        if new_status == self.status:
            return None
        at = at or timezone.now()
        change = ComponentStatusChange.objects.create(
            component=self,
            old_status=self.status,
            new_status=new_status,
            changed_at=at,
            incident=incident,
        )
        self.status = new_status
        self.updated_at = max(self.updated_at, at)
        self.save(update_fields=["status", "updated_at"])
        return change

    @property
    def first_day(self):
        return self.start_date or self.created_at.date()


class ComponentStatusChange(models.Model):
    component = models.ForeignKey(Component, on_delete=models.CASCADE, related_name="changes")
    old_status = models.CharField(max_length=24, choices=ComponentStatus.choices)
    new_status = models.CharField(max_length=24, choices=ComponentStatus.choices)
    changed_at = models.DateTimeField(default=timezone.now, db_index=True)
    incident = models.ForeignKey(
        "Incident", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["changed_at", "pk"]

    def __str__(self) -> str:
        return f"{self.component}: {self.old_status} -> {self.new_status} at {self.changed_at}"


class IncidentKind(models.TextChoices):
    INCIDENT = "incident", "Incident"
    MAINTENANCE = "maintenance", "Scheduled maintenance"


class IncidentStatus(models.TextChoices):
    INVESTIGATING = "investigating", "Investigating"
    IDENTIFIED = "identified", "Identified"
    MONITORING = "monitoring", "Monitoring"
    RESOLVED = "resolved", "Resolved"
    SCHEDULED = "scheduled", "Scheduled"
    IN_PROGRESS = "in_progress", "In progress"
    VERIFYING = "verifying", "Verifying"
    COMPLETED = "completed", "Completed"


INCIDENT_STATUSES = [
    IncidentStatus.INVESTIGATING,
    IncidentStatus.IDENTIFIED,
    IncidentStatus.MONITORING,
    IncidentStatus.RESOLVED,
]
MAINTENANCE_STATUSES = [
    IncidentStatus.SCHEDULED,
    IncidentStatus.IN_PROGRESS,
    IncidentStatus.VERIFYING,
    IncidentStatus.COMPLETED,
]
UNRESOLVED = [IncidentStatus.INVESTIGATING, IncidentStatus.IDENTIFIED, IncidentStatus.MONITORING]
MAINTENANCE_ACTIVE = [IncidentStatus.IN_PROGRESS, IncidentStatus.VERIFYING]
FINISHED = [IncidentStatus.RESOLVED, IncidentStatus.COMPLETED]


class Impact(models.TextChoices):
    NONE = "none", "None"
    MINOR = "minor", "Minor"
    MAJOR = "major", "Major"
    CRITICAL = "critical", "Critical"
    MAINTENANCE = "maintenance", "Maintenance"


class IncidentQuerySet(models.QuerySet):
    def incidents(self) -> "IncidentQuerySet":
        return self.filter(kind=IncidentKind.INCIDENT)

    def maintenances(self) -> "IncidentQuerySet":
        return self.filter(kind=IncidentKind.MAINTENANCE)

    def unresolved(self) -> "IncidentQuerySet":
        return self.incidents().filter(status__in=UNRESOLVED)

    def upcoming(self) -> "IncidentQuerySet":
        return self.maintenances().filter(status=IncidentStatus.SCHEDULED)

    def in_progress(self) -> "IncidentQuerySet":
        return self.maintenances().filter(status__in=MAINTENANCE_ACTIVE)

    def active(self) -> "IncidentQuerySet":
        """What a visitor should hear about now: open incidents and running maintenance."""
        return self.filter(
            Q(kind=IncidentKind.INCIDENT, status__in=UNRESOLVED)
            | Q(kind=IncidentKind.MAINTENANCE, status__in=MAINTENANCE_ACTIVE)
        )

    def due_to_start(self, now: datetime) -> "IncidentQuerySet":
        return self.upcoming().filter(auto_start=True, scheduled_for__lte=now)

    def due_to_complete(self, now: datetime) -> "IncidentQuerySet":
        return self.in_progress().filter(auto_complete=True, scheduled_until__lte=now)

    def with_timeline(self) -> "IncidentQuerySet":
        return self.prefetch_related("updates", "components")


class Incident(models.Model):
    """An incident or a scheduled maintenance: Statuspage gives both the same shape."""

    code = models.CharField(max_length=12, unique=True, default=new_code, editable=False)
    kind = models.CharField(
        max_length=12, choices=IncidentKind.choices, default=IncidentKind.INCIDENT
    )
    name = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=IncidentStatus.choices)
    impact = models.CharField(max_length=12, choices=Impact.choices, default=Impact.MINOR)
    components = models.ManyToManyField(Component, blank=True, related_name="incidents")
    # Slugs of the accounts this concerns; empty means every account.
    affected_accounts = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(default=timezone.now)
    monitoring_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    scheduled_for = models.DateTimeField(null=True, blank=True)
    scheduled_until = models.DateTimeField(null=True, blank=True)
    auto_start = models.BooleanField(default=True)
    auto_complete = models.BooleanField(default=True)
    postmortem_body = models.TextField(blank=True)
    postmortem_updated_at = models.DateTimeField(null=True, blank=True)
    postmortem_published_at = models.DateTimeField(null=True, blank=True)
    backfilled = models.BooleanField(default=False)

    objects = IncidentQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at", "-pk"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_maintenance(self) -> bool:
        return self.kind == IncidentKind.MAINTENANCE

    @property
    def is_active(self) -> bool:
        if self.is_maintenance:
            return self.status in MAINTENANCE_ACTIVE
        return self.status in UNRESOLVED

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED

    @property
    def public_status(self) -> str:
        # Statuspage reports "postmortem" once the postmortem is out.
        if self.postmortem_published_at and self.status == IncidentStatus.RESOLVED:
            return "postmortem"
        return self.status

    @property
    def has_published_postmortem(self) -> bool:
        return self.postmortem_published_at is not None

    @property
    def status_choices(self) -> list[tuple[str, str]]:
        wanted = MAINTENANCE_STATUSES if self.is_maintenance else INCIDENT_STATUSES
        return [(value, label) for value, label in IncidentStatus.choices if value in wanted]

    def concerns(self, account_slug: str) -> bool:
        return not self.affected_accounts or account_slug in self.affected_accounts

    def timeline(self) -> list["IncidentUpdate"]:
        return sorted(self.updates.all(), key=lambda u: (u.display_at, u.pk), reverse=True)

    def record_status(self, status: str, at: datetime) -> None:
        """Move the lifecycle on; the timestamps the API reports follow the status."""
        self.status = status
        if status == IncidentStatus.MONITORING and self.monitoring_at is None:
            self.monitoring_at = at
        if status in FINISHED:
            self.resolved_at = self.resolved_at or at
        elif self.resolved_at is not None:
            self.resolved_at = None  # reopened
        self.updated_at = max(self.updated_at, at)


class IncidentUpdate(models.Model):
    code = models.CharField(max_length=12, unique=True, default=new_code, editable=False)
    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="updates")
    status = models.CharField(max_length=16, choices=IncidentStatus.choices)
    body = models.TextField(help_text="Markdown.")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    # What visitors see; staff may backdate it to when something actually happened.
    display_at = models.DateTimeField(default=timezone.now)
    deliver_notifications = models.BooleanField(default=True)
    # [{code, name, old_status, new_status}] as Statuspage reports it, or null.
    affected_components = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-display_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.incident}: {self.status} at {self.display_at}"


class UpdateTemplate(models.Model):
    """Reusable wording for common updates, picked in the console."""

    name = models.CharField(max_length=120, unique=True)
    status = models.CharField(
        max_length=16, choices=IncidentStatus.choices, default=IncidentStatus.INVESTIGATING
    )
    title = models.CharField(max_length=200, blank=True, help_text="Incident name, if new.")
    body = models.TextField()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class SubscriberMode(models.TextChoices):
    EMAIL = "email", "Email"
    WEBHOOK = "webhook", "Webhook"


class SubscriberQuerySet(models.QuerySet):
    def confirmed(self) -> "SubscriberQuerySet":
        return self.filter(confirmed_at__isnull=False)

    def interested_in(self, components: list[Component]) -> "SubscriberQuerySet":
        """Subscribers to everything, or to one of these components.

        A notice that names no component concerns the whole service, so everyone gets it.
        """
        if not components:
            return self.all()
        return self.filter(Q(components__isnull=True) | Q(components__in=components)).distinct()


class Subscriber(models.Model):
    code = models.CharField(max_length=12, unique=True, default=new_code, editable=False)
    mode = models.CharField(max_length=8, choices=SubscriberMode.choices)
    # Email subscribers: where notices go. Webhook subscribers: who confirms and hears of
    # failures.
    email = models.EmailField()
    endpoint = models.URLField(max_length=500, blank=True)
    # None chosen means every component.
    components = models.ManyToManyField(Component, blank=True, related_name="subscribers")
    created_at = models.DateTimeField(default=timezone.now)
    confirmed_at = models.DateTimeField(null=True, blank=True)

    objects = SubscriberQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.endpoint if self.mode == SubscriberMode.WEBHOOK else self.email

    @property
    def is_confirmed(self) -> bool:
        return self.confirmed_at is not None

    def confirm(self) -> None:
        if self.confirmed_at is None:
            self.confirmed_at = timezone.now()
            self.save(update_fields=["confirmed_at"])


class Channel(models.TextChoices):
    EMAIL = "email", "Email"
    WEBHOOK = "webhook", "Webhook"


class DeliveryState(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Gave up"


class NotificationQuerySet(models.QuerySet):
    def due(self, now: datetime) -> "NotificationQuerySet":
        return self.filter(state=DeliveryState.PENDING, next_attempt_at__lte=now).order_by(
            "next_attempt_at", "pk"
        )


class Notification(models.Model):
    """The outbox: one row per message to send, written in the same transaction as the change.

    The worker sends it and retries with exponential backoff; a row is never dropped, only
    marked sent or (after too many attempts) failed, which staff can retry.
    """

    subscriber = models.ForeignKey(
        Subscriber, null=True, blank=True, on_delete=models.SET_NULL, related_name="notifications"
    )
    incident = models.ForeignKey(
        Incident, null=True, blank=True, on_delete=models.SET_NULL, related_name="notifications"
    )
    channel = models.CharField(max_length=8, choices=Channel.choices)
    target = models.CharField(max_length=500, help_text="Email address or webhook URL.")
    event = models.CharField(max_length=200, help_text="What it is about, for the log.")
    subject = models.CharField(max_length=250, blank=True)
    body = models.TextField(blank=True)
    headers = models.JSONField(default=dict, blank=True)
    payload = models.JSONField(null=True, blank=True)
    state = models.CharField(
        max_length=8, choices=DeliveryState.choices, default=DeliveryState.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    objects = NotificationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["state", "next_attempt_at"])]

    def __str__(self) -> str:
        return f"{self.channel} to {self.target}: {self.event}"

    def record_attempt(
        self, *, now: datetime, error: str, status_code: int | None, retry_delays: list[int]
    ) -> "DeliveryAttempt":
        """Log one try; on failure schedule the next after the next backoff delay, or give up."""
        self.attempts += 1
        attempt = DeliveryAttempt.objects.create(
            notification=self,
            attempted_at=now,
            succeeded=not error,
            status_code=status_code,
            error=error,
        )
        if not error:
            self.state, self.sent_at, self.last_error = DeliveryState.SENT, now, ""
        elif self.attempts > len(retry_delays):
            self.state, self.last_error = DeliveryState.FAILED, error
        else:
            self.last_error = error
            self.next_attempt_at = now + timedelta(seconds=retry_delays[self.attempts - 1])
        self.save(update_fields=["attempts", "state", "sent_at", "last_error", "next_attempt_at"])
        return attempt

    def retry_now(self) -> None:
        self.state, self.next_attempt_at = DeliveryState.PENDING, timezone.now()
        self.save(update_fields=["state", "next_attempt_at"])


class DeliveryAttempt(models.Model):
    notification = models.ForeignKey(
        Notification, on_delete=models.CASCADE, related_name="delivery_attempts"
    )
    attempted_at = models.DateTimeField(default=timezone.now)
    succeeded = models.BooleanField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-attempted_at", "-pk"]

    def __str__(self) -> str:
        return f"{'ok' if self.succeeded else self.error} at {self.attempted_at}"


class RequestMinute(models.Model):
    """Management-interface requests and 5xx answers per minute, summed over all processes."""

    minute = models.DateTimeField(unique=True)
    requests = models.PositiveIntegerField(default=0)
    server_errors = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-minute"]

    def __str__(self) -> str:
        return f"{self.minute}: {self.server_errors}/{self.requests}"
