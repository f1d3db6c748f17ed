import re

from django import forms
from django.contrib.auth.forms import AuthenticationForm, BaseUserCreationForm

from accounts import throttle
from accounts.models import Account, Invitation, Role, User

SLUG_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,38}[a-z0-9]$")
# Host names the product uses itself, or that users would mistake for it.
RESERVED_SLUGS = {
    "admin",
    "api",
    "app",
    "assets",
    "cdn",
    "dashboard",
    "docs",
    "ferry",
    "help",
    "mail",
    "public",
    "smtp",
    "staff",
    "static",
    "status",
    "support",
    "track",
    "www",
}


class AccountCreateForm(forms.Form):
    slug = forms.CharField(
        max_length=40,
        help_text="Lowercase letters, digits and hyphens; the account's subdomain.",
    )
    name = forms.CharField(max_length=200)
    owner_email = forms.EmailField(label="Owner's email")
    owner_password = forms.CharField(
        label="Owner's password",
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Leave empty to email the owner a link to choose one.",
    )

    def clean_slug(self) -> str:
        slug = self.cleaned_data["slug"].strip().lower()
        if not SLUG_PATTERN.match(slug):
            raise forms.ValidationError(
                "Use 2 to 40 lowercase letters, digits and hyphens, starting with a letter "
                "and not ending with a hyphen."
            )
        if slug in RESERVED_SLUGS:
            raise forms.ValidationError(f"“{slug}” is reserved; choose another.")
        if Account.objects.filter(slug=slug).exists():
            raise forms.ValidationError(f"An account “{slug}” already exists.")
        return slug

    def clean_owner_email(self) -> str:
        return self.cleaned_data["owner_email"].strip().lower()


class InviteForm(forms.Form):
    email = forms.EmailField()
    role = forms.ChoiceField(choices=Role.choices, initial=Role.MEMBER)

    def __init__(self, *args, inviter: User, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["role"].choices = [
            (value, label) for value, label in Role.choices if inviter.can_assign(value)
        ]

    def clean_email(self) -> str:
        email = self.cleaned_data["email"].strip().lower()
        if User.objects.filter(email=email, is_active=True).exists():
            raise forms.ValidationError("This person is already on the team.")
        if Invitation.objects.pending().filter(email=email).exists():
            raise forms.ValidationError("This person already has a pending invitation.")
        return email


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)

    def __init__(self, *args, manager: User, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["role"].choices = [
            (value, label) for value, label in Role.choices if manager.can_assign(value)
        ]


class AcceptInvitationForm(BaseUserCreationForm):
    class Meta:
        model = User
        fields = ("name",)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["name"].required = True


class EmailAuthenticationForm(AuthenticationForm):
    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": "That email address and password do not match a login here.",
    }
    # Set when the login was refused by throttling (the view answers 429).
    refusal: throttle.Refusal | None = None

    def clean(self):
        email = self.cleaned_data.get("username") or ""
        if not (email and self.cleaned_data.get("password")):
            return super().clean()
        self.refusal = throttle.refusal(self.request, email)
        if self.refusal:
            raise forms.ValidationError(self.refusal.message, code="throttled")
        try:
            cleaned = super().clean()
        except forms.ValidationError as error:
            if error.code == "invalid_login":
                throttle.record_failure(self.request, email)
            raise
        throttle.clear_failures(self.request, email)
        return cleaned


class ApiKeyForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="Where it is used, e.g. “Web app backend”.")

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("Give the key a name.")
        return name


class MoveForm(forms.Form):
    target = forms.ChoiceField(label="Move to server")

    def __init__(self, *args, account: Account, **kwargs) -> None:
        from django.conf import settings

        super().__init__(*args, **kwargs)
        self.fields["target"].choices = [
            (name, name) for name in sorted(settings.DATA_SERVERS) if name != account.server
        ]


class DeleteAccountForm(forms.Form):
    confirmation = forms.CharField(label="Type the account's slug to confirm", max_length=40)
