"""The import worker: finds queued CSV imports across accounts and runs each in its account."""

import logging
import time

from django.db import InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from accounts.models import Account
from ingest.models import ImportTask

log = logging.getLogger(__name__)


def claim_task() -> ImportTask | None:
    with transaction.atomic():
        task = (
            ImportTask.objects.waiting().filter(started_at__isnull=True)
            .select_for_update(skip_locked=True).first()
        )  # fmt: skip
        if task:
            task.started_at = timezone.now()
            task.save(update_fields=["started_at"])
    return task


def run_task(task: ImportTask) -> None:
    from segments import imports
    from segments.models import Import

    account = Account.objects.filter(pk=task.account_id).first()
    if account is None:
        log.warning("import %s: account %s no longer exists", task.import_id, task.account_id)
    else:
        with account:
            job = Import.objects.filter(pk=task.import_id).first()
            if job is not None:
                try:
                    imports.run_import(job)
                except Exception as error:  # the report must say why, whatever it was
                    log.exception("import %s of %s failed", job.pk, account.slug)
                    connection.set_schema_to_public()
                    with account:
                        imports.fail(
                            Import.objects.get(pk=job.pk), f"{type(error).__name__}: {error}"
                        )
    task.finished_at = timezone.now()
    task.save(update_fields=["finished_at"])


def run_forever(stop=lambda: False, idle_seconds: float = 1.0) -> None:
    while not stop():
        try:
            task = claim_task()
        except (OperationalError, InterfaceError):
            connection.close()
            time.sleep(5)
            continue
        if task is None:
            time.sleep(idle_seconds)
            continue
        run_task(task)
