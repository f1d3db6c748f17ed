"""The staff console for accounts, on the public side."""

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from accounts import actions
from accounts.access import get_account_for_staff, staff_required
from accounts.forms import AccountCreateForm, EmailAuthenticationForm
from accounts.models import Account, User


class StaffAuthenticationForm(EmailAuthenticationForm):
    def confirm_login_allowed(self, user: User) -> None:
        super().confirm_login_allowed(user)
        if not user.is_staff:
            raise ValidationError("This login is for staff only.", code="not_staff")


login_view = auth_views.LoginView.as_view(
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
        account = actions.create_account(**form.cleaned_data)
        messages.success(request, f"Account {account.slug} created at {account.url()}.")
        return redirect("staff:account", slug=account.slug)
    accounts = Account.objects.prefetch_related("domains")
    return render(request, "accounts/staff/accounts.html", {"accounts": accounts, "form": form})


@staff_required
def account_detail(request: HttpRequest, slug: str) -> HttpResponse:
    account = get_account_for_staff(slug)
    with account:
        team = list(User.objects.filter(is_active=True))
    return render(request, "accounts/staff/account.html", {"shown": account, "team": team})
