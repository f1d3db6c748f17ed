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
