"""CSV imports of people and attributes, run in the background through ingestion's apply."""

from django.db import models
from django.utils import timezone


class ImportQuerySet(models.QuerySet):
    def recent(self) -> "ImportQuerySet":
        return self.order_by("-created_at")


class Import(models.Model):
    class State(models.TextChoices):
        UPLOADED = "uploaded", "Uploaded"
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    class IdentifierKind(models.TextChoices):
        ID = "id", "Customer id"
        EMAIL = "email", "Email"

    filename = models.CharField(max_length=255)
    # Relative to settings.IMPORTS_DIR; the file belongs to this account's folder.
    stored_as = models.CharField(max_length=255)
    size_bytes = models.PositiveBigIntegerField()
    columns = models.JSONField(default=list)
    identifier_column = models.CharField(max_length=150, blank=True)
    identifier_kind = models.CharField(max_length=10, choices=IdentifierKind.choices, blank=True)
    # {column: attribute name}; columns left out are not imported.
    mapping = models.JSONField(default=dict)
    state = models.CharField(max_length=10, choices=State.choices, default=State.UPLOADED)
    rows_total = models.PositiveBigIntegerField(default=0)
    rows_done = models.PositiveBigIntegerField(default=0)
    rows_imported = models.PositiveBigIntegerField(default=0)
    rows_rejected = models.PositiveBigIntegerField(default=0)
    error = models.TextField(blank=True)
    created_by = models.CharField(max_length=254, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = ImportQuerySet.as_manager()

    def __str__(self) -> str:
        return f"{self.filename} ({self.get_state_display()})"

    @property
    def progress_percent(self) -> int:
        if not self.rows_total:
            return 100 if self.state == self.State.DONE else 0
        return min(100, round(100 * self.rows_done / self.rows_total))

    @property
    def is_active(self) -> bool:
        return self.state in (self.State.QUEUED, self.State.RUNNING)


class ImportRejection(models.Model):
    """A row that was not imported, and why: nothing is dropped silently."""

    job = models.ForeignKey(Import, on_delete=models.DB_CASCADE, related_name="rejections")
    line = models.PositiveBigIntegerField()
    reason = models.TextField()

    class Meta:
        ordering = ["line"]

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"
