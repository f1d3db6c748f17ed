"""Writes that cross models or send mail. Side effects run only after the commit."""

from collections.abc import Callable

from django.conf import settings
from django.contrib.auth.forms import PasswordResetForm
from django.contrib.auth.hashers import make_password
from django.core.mail import send_mail
from django.db import connection, transaction
from django.template.loader import render_to_string
from django.utils import timezone

from accounts import pool, provisioning
from accounts.access import invitation_token
from accounts.models import Account, Domain, Invitation, Role, User, generate_schema_name
from accounts.tokens import password_reset_tokens


def create_account(
    *,
    slug: str,
    name: str,
    owner_email: str,
    owner_password: str | None = None,
    on_provisioning: Callable[[Account], None] | None = None,
) -> Account:
    """Create the account, its schema, its domain and its owner.

    The schema is a spare from the warm pool (accounts/pool.py), renamed in the transaction
    that inserts the Account row. With no spare ready, the account is committed as
    `provisioning` first (staff and its host see that, `on_provisioning` is told) and its
    schema is built from the template script, or, if the template lags the code's
    migrations, after refreshing the template. Without a password the owner gets an email
    with a link to choose one.
    """
    # The owner's Argon2 hash is a deliberate fraction of a second of CPU: computed before
    # the transaction, so the claimed spare's row lock is held for milliseconds.
    owner_hash = make_password(owner_password)
    account = _account_from_spare(slug, name, owner_email, owner_hash, bool(owner_password))
    if account is not None:
        return account
    if connection.in_atomic_block:
        # Inside a caller's transaction nothing can be committed early: build it all here.
        account = Account(slug=slug, name=name, schema_name=generate_schema_name())
        return _build_account(account, provisioning.current_script(), owner_email, owner_hash,
                              bool(owner_password))  # fmt: skip
    account = _reserve_account(slug=slug, name=name)
    if on_provisioning:
        on_provisioning(account)
    try:
        script = provisioning.current_script()
        if script is None:
            provisioning.refresh_template()
            script = provisioning.current_script()
        return _build_account(account, script, owner_email, owner_hash, bool(owner_password))
    except BaseException:
        Account.objects.filter(pk=account.pk).delete()
        raise


@transaction.atomic
def _account_from_spare(
    slug: str, name: str, owner_email: str, owner_hash: str, has_password: bool
) -> Account | None:
    account = Account(slug=slug, name=name, schema_name=generate_schema_name())
    if not pool.claim_spare(account.schema_name):
        return None
    account.save(verbosity=0)
    Domain.objects.create(domain=account.host, tenant=account, is_primary=True)
    _add_owner(account, owner_email, owner_hash, has_password)
    return account


@transaction.atomic
def _reserve_account(*, slug: str, name: str) -> Account:
    account = Account(
        slug=slug, name=name, schema_name=generate_schema_name(), state=Account.State.PROVISIONING
    )
    account.save(verbosity=0)
    Domain.objects.create(domain=account.host, tenant=account, is_primary=True)
    return account


@transaction.atomic
def _build_account(
    account: Account, script: str | None, owner_email: str, owner_hash: str, has_password: bool
) -> Account:
    if account._state.adding:
        account.save(verbosity=0)
        Domain.objects.create(domain=account.host, tenant=account, is_primary=True)
    if script is None:
        # Inside a caller's transaction with no current template: migrate the one schema.
        account.create_schema(check_if_exists=True, verbosity=0)
    else:
        provisioning.clone_template(account.schema_name, script)
    if account.state != Account.State.ACTIVE:
        account.state = Account.State.ACTIVE
        account.save(update_fields=["state"])
    _add_owner(account, owner_email, owner_hash, has_password)
    return account


def _add_owner(account: Account, email: str, password_hash: str, has_password: bool) -> None:
    with account:
        owner = User(email=email.strip().lower(), role=Role.OWNER, password=password_hash)
        owner.save()
    if not has_password:
        transaction.on_commit(lambda: send_password_setup(account, owner.email))


def send_password_setup(account: Account, email: str) -> None:
    with account:
        form = PasswordResetForm({"email": email})
        form.is_valid()
        form.save(
            domain_override=account.url("").split("://", 1)[1],
            use_https=settings.SITE_SCHEME == "https",
            token_generator=password_reset_tokens,
            subject_template_name="accounts/email/welcome_subject.txt",
            email_template_name="accounts/email/welcome.txt",
            extra_email_context={"account": account},
        )


@transaction.atomic
def invite_teammate(*, account: Account, inviter: User, email: str, role: str) -> Invitation:
    invitation = Invitation.objects.create(email=email, role=role, invited_by=inviter)
    link = account.url(f"/invitations/{invitation_token(invitation)}/")
    body = render_to_string(
        "accounts/email/invitation.txt",
        {"account": account, "inviter": inviter, "invitation": invitation, "link": link},
    )
    subject = f"{inviter} invited you to {account.name} on Ferry"
    transaction.on_commit(lambda: send_mail(subject, body, None, [email]))
    return invitation


@transaction.atomic
def accept_invitation(*, invitation: Invitation, name: str, password: str) -> User:
    user = User.objects.create_user(invitation.email, password, name=name, role=invitation.role)
    invitation.accepted_at = timezone.now()
    invitation.save(update_fields=["accepted_at"])
    return user


def change_role(teammate: User, role: str) -> None:
    teammate.role = role
    teammate.save(update_fields=["role"])


def remove_teammate(teammate: User) -> None:
    """Deactivate rather than delete, so what they did stays attributed to them.

    An inactive user's existing sessions stop authenticating at their next request.
    """
    teammate.is_active = False
    teammate.save(update_fields=["is_active"])
