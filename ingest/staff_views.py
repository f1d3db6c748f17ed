"""Staff pages of ingestion: the backlog per account and the dead letters."""

import json

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts.access import staff_required
from accounts.models import Account
from ingest.credentials import UNVERIFIED
from ingest.models import DeadLetter
from ingest.spool import get_spool


def get_dead_letter_for_staff(letter_id: int) -> DeadLetter:
    return get_object_or_404(DeadLetter.objects.waiting(), pk=letter_id)


@staff_required
def backlog(request: HttpRequest) -> HttpResponse:
    spool = get_spool()
    backlog_rows = sorted(spool.backlog(), key=lambda row: row.waiting, reverse=True)
    accounts = Account.objects.in_bulk(
        [int(row.account) for row in backlog_rows if row.account != UNVERIFIED]
    )
    rows = [
        {
            "backlog": row,
            "shown": accounts.get(int(row.account)) if row.account != UNVERIFIED else None,
        }
        for row in backlog_rows
    ]
    letters = Paginator(DeadLetter.objects.waiting(), 50).get_page(request.GET.get("page"))
    letter_accounts = Account.objects.in_bulk(
        {letter.account_id for letter in letters if letter.account_id}
    )
    for letter in letters:
        letter.shown = letter_accounts.get(letter.account_id)
        letter.pretty = json.dumps(letter.payload, indent=2, sort_keys=True)
    context = {"rows": rows, "letters": letters, "pending": spool.pending_count()}
    return render(request, "ingest/staff_backlog.html", context)


@require_POST
@staff_required
def replay(request: HttpRequest, letter_id: int) -> HttpResponse:
    letter = get_dead_letter_for_staff(letter_id)
    account = str(letter.account_id) if letter.account_id else UNVERIFIED
    get_spool().append(account, [json.dumps(letter.payload)])
    letter.replayed_at = timezone.now()
    letter.save(update_fields=["replayed_at"])
    messages.success(request, f"Dead letter {letter.pk} is back in the spool.")
    return redirect("ingest_staff:backlog")


@require_POST
@staff_required
def discard(request: HttpRequest, letter_id: int) -> HttpResponse:
    letter = get_dead_letter_for_staff(letter_id)
    letter.discarded_at = timezone.now()
    letter.save(update_fields=["discarded_at"])
    messages.success(request, f"Dead letter {letter.pk} discarded.")
    return redirect("ingest_staff:backlog")
