"""The staff console for accounts, on the public side."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.core.exceptions import ValidationError
from django.db import connection
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts import actions, lifecycle, moving, pool
from accounts.access import get_account_for_staff, staff_required
from accounts.forms import AccountCreateForm, DeleteAccountForm, EmailAuthenticationForm, MoveForm
from accounts.models import Account, AccountMove, AuditEntry, User
from accounts.views import ThrottledLoginView


class StaffAuthenticationForm(EmailAuthenticationForm):
    def confirm_login_allowed(self, user: User) -> None:
        super().confirm_login_allowed(user)
        if not user.is_staff:
            raise ValidationError("This login is for staff only.", code="not_staff")


login_view = ThrottledLoginView.as_view(
    template_name="accounts/staff/login.html",
    authentication_form=StaffAuthenticationForm,
    redirect_authenticated_user=True,
    next_page="staff:accounts",
)
logout_view = auth_views.LogoutView.as_view(next_page="staff:login")


@staff_required
def account_list(request: HttpRequest) -> HttpResponse:
    form = AccountCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        provisioned: list[Account] = []
        account = actions.create_account(**form.cleaned_data, on_provisioning=provisioned.append)
        messages.success(request, f"Account {account.slug} created at {account.url()}.")
        if provisioned:
            messages.info(request, "No spare schema was ready: it was provisioned from the "
                                   "template, which takes longer.")  # fmt: skip
        return redirect("staff:account", slug=account.slug)
    accounts = Account.objects.prefetch_related("domains")
    context = {"accounts": accounts, "form": form, "spares_ready": pool.ready_count(),
               "spare_pool_size": settings.ACCOUNT_SPARE_POOL}  # fmt: skip
    return render(request, "accounts/staff/accounts.html", context)


@staff_required
def account_detail(request: HttpRequest, slug: str) -> HttpResponse:
    account = get_account_for_staff(slug)
    moves = list(account.moves.all()[:10])
    if request.htmx and request.GET.get("part") == "moves":
        return render(
            request, "accounts/staff/account.html#moves", {"shown": account, "moves": moves}
        )
    team = []
    if account.state != Account.State.PROVISIONING:
        with account:
            team = list(User.objects.filter(is_active=True))
    context = {
        "shown": account,
        "team": team,
        "moves": moves,
        "move_form": MoveForm(account=account),
        "delete_form": DeleteAccountForm(),
    }
    return render(request, "accounts/staff/account.html", context)


@require_POST
@staff_required
def start_move(request: HttpRequest, slug: str) -> HttpResponse:
    account = get_account_for_staff(slug)
    form = MoveForm(request.POST, account=account)
    if not form.is_valid():
        messages.error(request, "Choose one of the other data servers.")
        return redirect("staff:account", slug=account.slug)
    try:
        # A move whose process died leaves the account moving: recover it first.
        for recovered in moving.recover_abandoned(account):
            messages.info(request, f"An interrupted move was recovered: {recovered.detail}.")
        account.refresh_from_db()
        move = moving.start_move(account, form.cleaned_data["target"], request.user.email)
    except moving.MoveError as error:
        messages.error(request, str(error))
        return redirect("staff:account", slug=account.slug)
    moving.run_in_background(move)
    with account:
        AuditEntry.record(request.user, "account.move_started", move.target, by="staff")
    messages.success(request, f"Moving {account.slug} to {move.target}; progress below.")
    return redirect("staff:account", slug=account.slug)


@require_POST
@staff_required
def clean_up_move(request: HttpRequest, slug: str, move_id: int) -> HttpResponse:
    account = get_account_for_staff(slug)
    move = get_object_or_404(AccountMove, pk=move_id, account=account)
    try:
        moving.cleanup_move(move)
    except moving.MoveError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, f"Dropped the old copy {move.source}:{move.old_schema}.")
    return redirect("staff:account", slug=account.slug)


@require_POST
@staff_required
def export(request: HttpRequest, slug: str) -> HttpResponse:
    account = get_account_for_staff(slug)
    with account:
        AuditEntry.record(request.user, "account.exported", account.slug, by="staff")
    connection.set_schema_to_public()
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response = StreamingHttpResponse(
        lifecycle.export_chunks(account), content_type="application/gzip"
    )
    response["Content-Disposition"] = f'attachment; filename="{account.slug}-{stamp}.sql.gz"'
    return response


@require_POST
@staff_required
def delete_account(request: HttpRequest, slug: str) -> HttpResponse:
    account = get_account_for_staff(slug)
    form = DeleteAccountForm(request.POST)
    try:
        if request.POST.get("cancel"):
            lifecycle.cancel_deletion(account)
            messages.success(request, f"Deletion of {account.slug} cancelled.")
        elif form.is_valid():
            lifecycle.schedule_deletion(account, form.cleaned_data["confirmation"])
            messages.success(
                request,
                f"{account.slug} will be deleted after "
                f"{account.delete_after:%Y-%m-%d %H:%M} UTC unless you cancel.",
            )
    except lifecycle.LifecycleError as error:
        messages.error(request, str(error))
    return redirect("staff:account", slug=account.slug)
