"""The customer dashboard."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.access import teammate_required
from accounts.models import Invitation, User


@teammate_required
def dashboard(request: HttpRequest) -> HttpResponse:
    context = {
        "teammate_count": User.objects.filter(is_active=True).count(),
        "pending_invitations": Invitation.objects.pending().count(),
    }
    return render(request, "segments/dashboard.html", context)
