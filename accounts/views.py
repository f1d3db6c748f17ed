"""The account side: login, password management, the team and invitations."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.views.decorators.http import require_POST

from accounts import actions
from accounts.access import (
    get_api_key_to_manage,
    get_api_keys,
    get_invitation_from_token,
    get_invitation_to_manage,
    get_teammate_to_manage,
    invitation_token,
    team_manager_required,
    teammate_required,
)
from accounts.forms import (
    AcceptInvitationForm,
    ApiKeyForm,
    EmailAuthenticationForm,
    InviteForm,
    RoleForm,
)
from accounts.models import ApiKey, AuditEntry, Invitation, IssuedSecrets, User, control_plane
from accounts.tokens import password_reset_tokens


class ThrottledLoginView(auth_views.LoginView):
    """A login refused by throttling (accounts/throttle.py) answers 429 with Retry-After."""

    def form_invalid(self, form):
        response = super().form_invalid(form)
        if getattr(form, "refusal", None):
            response.status_code = 429
            response["Retry-After"] = str(form.refusal.retry_after)
        return response


login_view = ThrottledLoginView.as_view(
    template_name="accounts/login.html",
    authentication_form=EmailAuthenticationForm,
    redirect_authenticated_user=True,
)
# The next page is the view's own, not LOGOUT_REDIRECT_URL: the admin's logout on the public
# side would reverse it in a URLconf without it (a 500 on every staff logout from /admin/).
logout_view = auth_views.LogoutView.as_view(next_page="login")
password_change = teammate_required(
    auth_views.PasswordChangeView.as_view(template_name="accounts/password_change.html")
)
password_change_done = teammate_required(
    auth_views.PasswordChangeDoneView.as_view(template_name="accounts/password_change_done.html")
)
password_reset = auth_views.PasswordResetView.as_view(
    template_name="accounts/password_reset.html",
    email_template_name="accounts/email/password_reset.txt",
    subject_template_name="accounts/email/password_reset_subject.txt",
    token_generator=password_reset_tokens,
)
password_reset_done = auth_views.PasswordResetDoneView.as_view(
    template_name="accounts/password_reset_done.html"
)
password_reset_confirm = auth_views.PasswordResetConfirmView.as_view(
    template_name="accounts/password_reset_confirm.html",
    token_generator=password_reset_tokens,
    success_url=reverse_lazy("password_reset_complete"),
)
password_reset_complete = auth_views.PasswordResetCompleteView.as_view(
    template_name="accounts/password_reset_complete.html"
)


def _team_context(request: HttpRequest, invite_form: InviteForm | None = None) -> dict:
    manager = request.user
    teammates = list(User.objects.filter(is_active=True))
    for teammate in teammates:
        teammate.manageable = manager.can_manage(teammate)
    invitations = list(Invitation.objects.pending().select_related("invited_by"))
    if manager.can_manage_team:
        for invitation in invitations:
            invitation.link = request.account.url(f"/invitations/{invitation_token(invitation)}/")
            invitation.revocable = manager.can_assign(invitation.role)
    return {
        "teammates": teammates,
        "invitations": invitations,
        "invite_form": invite_form or InviteForm(inviter=manager),
        "role_form": RoleForm(manager=manager),
    }


def _team_response(request: HttpRequest, invite_form: InviteForm | None = None) -> HttpResponse:
    if request.htmx:
        context = _team_context(request, invite_form)
        return render(request, "accounts/team.html#team-panel", context)
    return redirect("team")


@teammate_required
def team(request: HttpRequest) -> HttpResponse:
    return render(request, "accounts/team.html", _team_context(request))


@require_POST
@team_manager_required
def invite(request: HttpRequest) -> HttpResponse:
    form = InviteForm(request.POST, inviter=request.user)
    if not form.is_valid():
        # Invalid forms re-render with their errors (200 under htmx, the page otherwise).
        if request.htmx:
            return _team_response(request, form)
        return render(request, "accounts/team.html", _team_context(request, form))
    invitation = actions.invite_teammate(
        account=request.account, inviter=request.user, **form.cleaned_data
    )
    AuditEntry.record(request.user, "team.invited", invitation.email, role=invitation.role)
    messages.success(request, f"Invitation sent to {invitation.email}.")
    return _team_response(request)


@require_POST
@team_manager_required
def change_role(request: HttpRequest, user_id: int) -> HttpResponse:
    teammate = get_teammate_to_manage(request, user_id)
    form = RoleForm(request.POST, manager=request.user)
    if form.is_valid():
        actions.change_role(teammate, form.cleaned_data["role"])
        AuditEntry.record(request.user, "team.role_changed", teammate.email, role=teammate.role)
        messages.success(request, f"{teammate} is now {teammate.get_role_display().lower()}.")
    else:
        messages.error(request, "You cannot give that role.")
    return _team_response(request)


@require_POST
@team_manager_required
def remove_teammate(request: HttpRequest, user_id: int) -> HttpResponse:
    teammate = get_teammate_to_manage(request, user_id)
    actions.remove_teammate(teammate)
    AuditEntry.record(request.user, "team.removed", teammate.email)
    messages.success(request, f"{teammate} no longer has access.")
    return _team_response(request)


@require_POST
@team_manager_required
def revoke_invitation(request: HttpRequest, invitation_id: int) -> HttpResponse:
    invitation = get_invitation_to_manage(request, invitation_id)
    invitation.revoke()
    AuditEntry.record(request.user, "team.invitation_revoked", invitation.email)
    messages.success(request, f"Invitation for {invitation.email} revoked.")
    return _team_response(request)


def accept_invitation(request: HttpRequest, token: str) -> HttpResponse:
    invitation = get_invitation_from_token(token, settings.INVITATION_MAX_AGE)
    if User.objects.filter(email=invitation.email).exists():
        messages.info(request, "You already have a login for this account.")
        return redirect("login")
    form = AcceptInvitationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = actions.accept_invitation(
            invitation=invitation,
            name=form.cleaned_data["name"],
            password=form.cleaned_data["password1"],
        )
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(request, f"Welcome to {request.account.name}.")
        return redirect("dashboard")
    return render(
        request, "accounts/accept_invitation.html", {"form": form, "invitation": invitation}
    )


# --- API keys -----------------------------------------------------------------------------


def _api_keys_page(
    request: HttpRequest, form: ApiKeyForm | None = None, issued: IssuedSecrets | None = None,
    issued_for: ApiKey | None = None, status: int = 200,
) -> HttpResponse:  # fmt: skip
    context = {
        "api_keys": get_api_keys(request),
        "form": form or ApiKeyForm(),
        "issued": issued,
        "issued_for": issued_for,
        "public_url": settings.PUBLIC_URL,
    }
    return render(request, "accounts/api_keys.html", context, status=status)


@teammate_required
def api_keys(request: HttpRequest) -> HttpResponse:
    return _api_keys_page(request)


@require_POST
@team_manager_required
def create_api_key(request: HttpRequest) -> HttpResponse:
    form = ApiKeyForm(request.POST)
    if not form.is_valid():
        return _api_keys_page(request, form)
    with control_plane():
        key, issued = ApiKey.issue(request.account, form.cleaned_data["name"], request.user.email)
    AuditEntry.record(request.user, "api_key.created", key.name, site_id=key.site_id)
    # The secrets are shown on this response only; nothing keeps them.
    return _api_keys_page(request, issued=issued, issued_for=key)


@require_POST
@team_manager_required
def rotate_api_key(request: HttpRequest, key_id: int) -> HttpResponse:
    key = get_api_key_to_manage(request, key_id)
    with control_plane():
        issued = key.rotate()
    AuditEntry.record(request.user, "api_key.rotated", key.name, site_id=key.site_id)
    return _api_keys_page(request, issued=issued, issued_for=key)


@require_POST
@team_manager_required
def revoke_api_key(request: HttpRequest, key_id: int) -> HttpResponse:
    key = get_api_key_to_manage(request, key_id)
    with control_plane():
        key.revoke()
    AuditEntry.record(request.user, "api_key.revoked", key.name, site_id=key.site_id)
    messages.success(request, f"“{key.name}” is revoked; requests with it are refused.")
    return redirect("api_keys")
