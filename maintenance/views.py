"""The account's data retention settings, in its dashboard."""

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from accounts.access import teammate_required
from accounts.models import control_plane
from maintenance import actions
from maintenance.forms import RetentionForm
from maintenance.models import RetentionPolicy


@teammate_required
def retention_settings(request: HttpRequest) -> HttpResponse:
    """Everyone on the team reads the policy; owners and admins shorten it."""
    with control_plane():
        policy = RetentionPolicy.for_account(request.account)
    form = RetentionForm(policy, request.POST or None)
    if request.method == "POST":
        if not request.user.can_manage_team:
            raise PermissionDenied
        if form.is_valid():
            changes = actions.set_retention(request.account, request.user, form.cleaned_data)
            messages.success(
                request,
                "Retention saved; older data goes at the next cleanup round."
                if changes
                else "Nothing changed.",
            )
            return redirect("retention_settings")
    kinds = [
        {"kind": kind, "field": form[f"{kind}_days"], "days": policy.days(kind),
         "limit": policy.limit(kind)}
        for kind in RetentionPolicy.KINDS
    ]  # fmt: skip
    context = {
        "form": form, "kinds": kinds, "policy": policy,
        "cleanup_minutes": max(1, settings.RETENTION_EVERY_SECONDS // 60),
    }  # fmt: skip
    return render(request, "maintenance/retention.html", context)
