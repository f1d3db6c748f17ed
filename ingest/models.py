"""Control-plane bookkeeping of ingestion: items that could not be applied."""

from django.db import models
from django.utils import timezone

from accounts.models import CONTROL


class DeadLetterQuerySet(models.QuerySet):
    def waiting(self) -> "DeadLetterQuerySet":
        return self.filter(replayed_at__isnull=True, discarded_at__isnull=True)


class DeadLetter(models.Model):
    """An accepted item that could not be applied. Staff read it, and replay or discard it."""

    # The account by plain value: no foreign key from ingestion bookkeeping into accounts'
    # lifecycle, and an unknown credential has no account at all.
    account_id = models.BigIntegerField(null=True, blank=True)
    # "<node>:<spool item id>": the same spooled item is dead-lettered at most once.
    source = models.CharField(max_length=200, unique=True)
    payload = models.JSONField()
    error = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)
    replayed_at = models.DateTimeField(null=True, blank=True)
    discarded_at = models.DateTimeField(null=True, blank=True)

    planes = {CONTROL}

    objects = DeadLetterQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.source}: {self.error[:60]}"


class ImportTaskQuerySet(models.QuerySet):
    def waiting(self) -> "ImportTaskQuerySet":
        return self.filter(finished_at__isnull=True).order_by("created_at")


class ImportTask(models.Model):
    """A CSV import waiting for the import worker. Control plane, so that one query finds work
    across accounts; the account is carried explicitly and the import row lives in its schema."""

    account_id = models.BigIntegerField()
    import_id = models.BigIntegerField()
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    planes = {CONTROL}

    objects = ImportTaskQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account_id", "import_id"], name="import_task_unique")
        ]

    def __str__(self) -> str:
        return f"import {self.import_id} of account {self.account_id}"
