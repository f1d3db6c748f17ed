"""Control-plane rows of maintenance: what runs now (and ran lately) under the governor, and
how long each account keeps its data."""

from django.conf import settings
from django.db import models
from django.utils import timezone

from accounts.models import CONTROL, Account


class MaintenanceRunQuerySet(models.QuerySet):
    def live(self) -> "MaintenanceRunQuerySet":
        return self.filter(finished_at__isnull=True)

    def recent(self) -> "MaintenanceRunQuerySet":
        return self.filter(finished_at__isnull=False).order_by("-finished_at")


class MaintenanceRun(models.Model):
    """One piece of background maintenance holding (or waiting for) a governor slot.

    The row is the pace staff see: rows done, rate, and whether it is running or paused and
    why. Rows stay after they finish, as recent history, until retention removes them.
    """

    class State(models.TextChoices):
        WAITING = "waiting", "Waiting for a slot"
        RUNNING = "running", "Running"
        PAUSED = "paused", "Paused for live traffic"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        LOST = "lost", "Lost (its process went away)"

    kind = models.CharField(max_length=40)
    # The account by plain value and label, so that history outlives a deleted account.
    account_id = models.BigIntegerField(null=True, blank=True)
    account_label = models.CharField(max_length=60, blank=True)
    host = models.CharField(max_length=255)
    pid = models.IntegerField()
    state = models.CharField(max_length=10, choices=State.choices, default=State.WAITING)
    reason = models.CharField(max_length=300, blank=True)
    rows_done = models.BigIntegerField(default=0)
    rows_per_second = models.FloatField(default=0)
    paused_seconds = models.FloatField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    planes = {CONTROL}

    objects = MaintenanceRunQuerySet.as_manager()

    class Meta:
        ordering = ["created_at"]
        indexes = [
            models.Index(
                fields=["state"], name="maintenance_run_live", condition=models.Q(finished_at=None)
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.account_label or '(all accounts)'}: {self.state}"


class RetentionPolicy(models.Model):
    """How long one account keeps its events, deliveries and dead letters.

    Each kind has a ceiling that staff set (empty: the default from settings) and the
    account's own choice, which may only be shorter. What cleanup applies is `days(kind)`.
    """

    KINDS = ("events", "deliveries", "dead_letters")

    account = models.OneToOneField(Account, on_delete=models.CASCADE, related_name="retention")
    events_limit_days = models.PositiveIntegerField(null=True, blank=True)
    events_days = models.PositiveIntegerField(null=True, blank=True)
    deliveries_limit_days = models.PositiveIntegerField(null=True, blank=True)
    deliveries_days = models.PositiveIntegerField(null=True, blank=True)
    dead_letters_limit_days = models.PositiveIntegerField(null=True, blank=True)
    dead_letters_days = models.PositiveIntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)
    updated_by = models.CharField(max_length=254, blank=True)
    # When cleanup last finished a full round for this account (all kinds).
    cleaned_at = models.DateTimeField(null=True, blank=True)

    planes = {CONTROL}

    def __str__(self) -> str:
        return f"retention of {self.account_id}"

    @classmethod
    def for_account(cls, account: Account) -> "RetentionPolicy":
        """The account's policy; an unsaved one with the defaults when it has none."""
        found = cls.objects.filter(account_id=account.pk).first()
        return found or cls(account=account)

    def limit(self, kind: str) -> int:
        value = getattr(self, f"{kind}_limit_days")
        return value if value is not None else settings.RETENTION_DEFAULT_DAYS[kind]

    def chosen(self, kind: str) -> int | None:
        return getattr(self, f"{kind}_days")

    def days(self, kind: str) -> int:
        chosen, limit = self.chosen(kind), self.limit(kind)
        return limit if chosen is None else min(chosen, limit)
