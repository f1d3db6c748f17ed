"""Staff pages of maintenance: the governor's slots and pace, retention ceilings per account,
and the largest accounts by size and by dead rows."""

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from accounts.access import get_account_for_staff, staff_required
from accounts.models import Account
from maintenance import actions, governor
from maintenance.forms import StaffRetentionForm
from maintenance.models import MaintenanceRun, RetentionPolicy
from maintenance.storage import storage_report


@staff_required
def console(request: HttpRequest) -> HttpResponse:
    governor.reap_lost_runs()
    reading = governor.read_traffic()
    policies = {p.account_id: p for p in RetentionPolicy.objects.all()}
    accounts = []
    for account in Account.objects.exclude(schema_name="public"):
        policy = policies.get(account.pk) or RetentionPolicy(account=account)
        days = {kind: policy.days(kind) for kind in RetentionPolicy.KINDS}
        accounts.append({"account": account, "days": days, "cleaned_at": policy.cleaned_at})
    context = {
        "live": MaintenanceRun.objects.live().order_by("state", "created_at"),
        "recent": MaintenanceRun.objects.recent()[:30],
        "reading": reading,
        "behind": reading.behind(),
        "accounts": accounts,
        "limits": {
            "slots": settings.GOVERNOR_MAX_SLOTS,
            "backlog": settings.GOVERNOR_MAX_BACKLOG,
            "age": settings.GOVERNOR_MAX_BACKLOG_AGE,
            "duty": round(settings.GOVERNOR_DUTY * 100),
            "busy": settings.GOVERNOR_BUSY_QUERIES,
        },
    }
    return render(request, "maintenance/staff/console.html", context)


@staff_required
def account_retention(request: HttpRequest, slug: str) -> HttpResponse:
    account = get_account_for_staff(slug)
    policy = RetentionPolicy.for_account(account)
    form = StaffRetentionForm(policy, request.POST or None)
    if request.method == "POST" and form.is_valid():
        changes = actions.set_retention_limits(account, request.user, form.cleaned_data)
        messages.success(
            request,
            f"Retention ceilings of {account.slug} saved." if changes else "Nothing changed.",
        )
        return redirect("maintenance_staff:retention", slug=account.slug)
    kinds = [
        {"kind": kind, "field": form[f"{kind}_limit_days"], "days": policy.days(kind),
         "chosen": policy.chosen(kind), "default": settings.RETENTION_DEFAULT_DAYS[kind]}
        for kind in RetentionPolicy.KINDS
    ]  # fmt: skip
    context = {"shown": account, "form": form, "kinds": kinds, "policy": policy}
    return render(request, "maintenance/staff/retention.html", context)


@staff_required
def storage(request: HttpRequest) -> HttpResponse:
    report = storage_report(fresh=request.GET.get("fresh") == "1")
    return render(request, "maintenance/staff/storage.html", {"report": report})
