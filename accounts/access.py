"""Who may do what: every view reaches accounts' rows through these helpers.

A dashboard request has already been routed to its account's schema by the middleware, so a
row found here belongs to that account; the helpers add the role checks.
"""

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core import signing
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404

from accounts.middleware import ACCOUNT_SIDE, PUBLIC_SIDE
from accounts.models import Account, ApiKey, Invitation, User, control_plane

View = Callable[..., HttpResponse]
INVITATION_SALT = "ferry.invitation"


def _side_view(
    side: str, login_url: str, allowed: Callable[[User], bool]
) -> Callable[[View], View]:
    def decorator(view: View) -> View:
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if getattr(request, "side", None) != side:
                raise Http404
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path(), login_url)
            if not allowed(request.user):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


# Any teammate of the account whose host this is; viewers included.
teammate_required = _side_view(ACCOUNT_SIDE, "login", lambda user: bool(user.role))
# Teammates who may change data: everyone but viewers.
editor_required = _side_view(ACCOUNT_SIDE, "login", lambda user: user.can_edit)
# Owners and admins, who manage the team.
team_manager_required = _side_view(ACCOUNT_SIDE, "login", lambda user: user.can_manage_team)
# Staff of the company running Ferry, on the public side only.
staff_required = _side_view(PUBLIC_SIDE, "staff:login", lambda user: user.is_staff)


def get_teammate_to_manage(request: HttpRequest, user_id: int) -> User:
    teammate = get_object_or_404(User, pk=user_id, is_active=True)
    if not request.user.can_manage(teammate):
        raise PermissionDenied
    return teammate


def get_invitation_to_manage(request: HttpRequest, invitation_id: int) -> Invitation:
    invitation = get_object_or_404(Invitation.objects.pending(), pk=invitation_id)
    if not request.user.can_assign(invitation.role):
        raise PermissionDenied
    return invitation


def invitation_token(invitation: Invitation) -> str:
    # The schema is signed in, so a link from one account means nothing on another's host.
    return signing.dumps(
        {"id": invitation.pk, "schema": connection.schema_name}, salt=INVITATION_SALT
    )


def get_invitation_from_token(token: str, max_age: int) -> Invitation:
    """The pending invitation a link names, or 404 (expired, revoked, used or foreign)."""
    try:
        data = signing.loads(token, salt=INVITATION_SALT, max_age=max_age)
    except signing.BadSignature:
        raise Http404("This invitation link is invalid or has expired.") from None
    if data.get("schema") != connection.schema_name:
        raise Http404("This invitation link is for another account.")
    return get_object_or_404(Invitation.objects.pending(), pk=data.get("id"))


def get_account_for_staff(slug: str) -> Account:
    return get_object_or_404(Account, slug=slug)


def get_api_keys(request: HttpRequest) -> list[ApiKey]:
    with control_plane():
        return list(ApiKey.objects.filter(account=request.account))


def get_api_key_to_manage(request: HttpRequest, key_id: int) -> ApiKey:
    """An active key of this account; the caller is a team manager (checked by decorator)."""
    with control_plane():
        return get_object_or_404(ApiKey.objects.active(), pk=key_id, account=request.account)
