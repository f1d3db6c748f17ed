"""Accounts (tenants), their domains and the people who log in.

Account and Domain are control-plane rows in `public`. User lives in both planes: staff in
`public`, each account's team in the account's own schema. Invitation is account-plane only.
The `planes` attribute tells `accounts.routers.PlaneRouter` which schemas get a model's table.
"""

import hashlib
import hmac
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.db import connection, models
from django.utils import timezone
from django_tenants.models import DomainMixin, TenantMixin

CONTROL = "control"
ACCOUNT = "account"


def generate_schema_name() -> str:
    # Never derived from input: a slug can be renamed, a schema name must not need to be.
    return f"acct_{secrets.token_hex(6)}"


class AccountQuerySet(models.QuerySet):
    def for_host(self, host: str) -> "Account | None":
        # Schema-qualified, so the lookup works whatever the connection's search path is and
        # a request for the same account as the last one needs no `SET search_path` at all.
        found = list(
            self.raw(
                """
                SELECT account.* FROM public.accounts_account AS account
                JOIN public.accounts_domain AS domain ON domain.tenant_id = account.id
                WHERE domain.domain = %s
                """,
                [host],
            )
        )
        return found[0] if found else None


class Account(TenantMixin):
    class State(models.TextChoices):
        # The schema is being built the slow way (the template was behind the code).
        PROVISIONING = "provisioning", "Provisioning"
        ACTIVE = "active", "Active"
        # Being copied to another data server: drain paused, dashboard writes refused.
        MOVING = "moving", "Moving"
        # Staff asked for deletion; the schema is dropped once `delete_after` has passed.
        DELETING = "deleting", "Scheduled for deletion"

    slug = models.SlugField(max_length=40, unique=True)
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=timezone.now)
    # The data server holding the schema: a name in settings.DATA_SERVERS.
    server = models.CharField(max_length=31, default="default")
    state = models.CharField(max_length=12, choices=State.choices, default=State.ACTIVE)
    delete_after = models.DateTimeField(null=True, blank=True)

    # The schema is cloned from the template by accounts.provisioning, not migrated here.
    auto_create_schema = False
    planes = {CONTROL}

    objects = AccountQuerySet.as_manager()

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug

    def activate(self) -> None:
        # Only the account's schema on the search path: a table missing from it must fail,
        # not silently read the control plane's table of the same name. The connection moves
        # to the account's server with it (accounts/backend/base.py).
        if (
            connection.schema_name == self.schema_name
            and connection.server == self.server
            and not connection.include_public_schema
        ):
            connection.tenant = self  # already there: keep the search path as it was set
            return
        connection.set_tenant(self, include_public=False)

    def reachable(self) -> bool:
        """Whether the account's server answers (after a database error on its connection)."""
        previous = connection.tenant
        try:
            self.activate()
            connection.ensure_connection()
            return connection.is_usable()
        except Exception:
            return False
        finally:
            restore(previous)

    def __exit__(self, exc_type, exc, tb) -> None:
        restore(self._previous_tenant.pop())

    @property
    def host(self) -> str:
        return f"{self.slug}.{settings.BASE_DOMAIN}"

    def url(self, path: str = "/") -> str:
        port = settings.SITE_PORT
        default_port = {"http": "80", "https": "443"}[settings.SITE_SCHEME]
        netloc = self.host if port in ("", default_port) else f"{self.host}:{port}"
        return f"{settings.SITE_SCHEME}://{netloc}{path}"


def restore(tenant) -> None:
    """Go back to a previous tenant, an account again with its own schema alone."""
    if isinstance(tenant, Account):
        tenant.activate()
    else:
        connection.set_tenant(tenant)


@contextmanager
def control_plane() -> Iterator[None]:
    """Read or write control-plane rows (API keys, dead letters) from inside an account's
    request, then return to the account's schema alone."""
    previous = connection.tenant
    connection.set_schema_to_public()
    try:
        yield
    finally:
        restore(previous)


class Domain(DomainMixin):
    planes = {CONTROL}


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    MEMBER = "member", "Member"
    VIEWER = "viewer", "Viewer"


ROLE_RANK = {Role.VIEWER: 0, Role.MEMBER: 1, Role.ADMIN: 2, Role.OWNER: 3}


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def get_by_natural_key(self, email: str) -> "User":
        return self.get(email=email.strip().lower())

    def create_user(self, email: str, password: str | None = None, **fields) -> "User":
        user = self.model(email=email.strip().lower(), **fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **fields) -> "User":
        fields.setdefault("is_staff", True)
        fields.setdefault("is_superuser", True)
        return self.create_user(email, password, **fields)


class User(AbstractBaseUser, PermissionsMixin):
    email = models.EmailField("email address", unique=True)
    name = models.CharField(max_length=150, blank=True)
    # Blank for staff in the control plane; every account user has one.
    role = models.CharField(max_length=10, choices=Role.choices, blank=True)
    is_staff = models.BooleanField(default=False)
    is_active = models.BooleanField(default=True)
    date_joined = models.DateTimeField(default=timezone.now)

    planes = {CONTROL, ACCOUNT}

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"

    class Meta:
        ordering = ["email"]

    def __str__(self) -> str:
        return self.name or self.email

    def get_full_name(self) -> str:
        return self.name or self.email

    def get_short_name(self) -> str:
        return self.name.split(" ")[0] if self.name else self.email

    @property
    def can_edit(self) -> bool:
        return self.role in (Role.OWNER, Role.ADMIN, Role.MEMBER)

    @property
    def can_manage_team(self) -> bool:
        return self.role in (Role.OWNER, Role.ADMIN)

    def can_assign(self, role: str) -> bool:
        """Owners assign any role; admins any role below owner."""
        if self.role == Role.OWNER:
            return True
        return self.role == Role.ADMIN and role != Role.OWNER

    def can_manage(self, teammate: "User") -> bool:
        return teammate.pk != self.pk and self.can_assign(teammate.role)


class InvitationQuerySet(models.QuerySet):
    def pending(self) -> "InvitationQuerySet":
        return self.filter(accepted_at__isnull=True, revoked_at__isnull=True)


class Invitation(models.Model):
    email = models.EmailField()
    role = models.CharField(max_length=10, choices=Role.choices)
    invited_by = models.ForeignKey(
        User, null=True, on_delete=models.SET_NULL, related_name="invitations_sent"
    )
    created_at = models.DateTimeField(default=timezone.now)
    accepted_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    planes = {ACCOUNT}

    objects = InvitationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.email} ({self.role})"

    def revoke(self) -> None:
        self.revoked_at = timezone.now()
        self.save(update_fields=["revoked_at"])


def _digest(secret: str) -> str:
    # Secrets are long random tokens, so a plain SHA-256 is enough to keep them unusable
    # if the table leaks, and cheap enough for every API request.
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedSecrets:
    """What the owner sees once, when a key is created or rotated."""

    site_id: str
    api_key: str
    write_key: str
    tracker_key: str


class ApiKeyQuerySet(models.QuerySet):
    def active(self) -> "ApiKeyQuerySet":
        return self.filter(revoked_at__isnull=True)

    def for_track(self, site_id: str, api_key: str) -> "ApiKey | None":
        key = self.active().select_related("account").filter(site_id=site_id).first()
        if key and hmac.compare_digest(key.api_key_hash, _digest(api_key)):
            return key
        return None

    def for_write_key(self, write_key: str) -> "ApiKey | None":
        return (
            self.active()
            .select_related("account")
            .filter(write_key_hash=_digest(write_key))
            .first()
        )

    def for_tracker(self, tracker_key: str) -> "ApiKey | None":
        return self.active().select_related("account").filter(tracker_key=tracker_key).first()


class ApiKey(models.Model):
    """Credentials that send data to one account.

    `site_id` + `api_key` for the Customer.io Track API, `write_key` for the Segment spec, and
    `tracker_key`, public by design, for the browser tracker: it can only send identify, page
    and track calls, never read or change anything else.
    """

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    site_id = models.CharField(max_length=40, unique=True)
    api_key_hash = models.CharField(max_length=64)
    write_key_hash = models.CharField(max_length=64, unique=True)
    tracker_key = models.CharField(max_length=40, unique=True)
    created_by = models.CharField(max_length=254, blank=True)  # an email, as a plain value
    created_at = models.DateTimeField(default=timezone.now)
    rotated_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    planes = {CONTROL}

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.site_id})"

    @classmethod
    def issue(
        cls, account: Account, name: str, created_by: str = ""
    ) -> tuple["ApiKey", IssuedSecrets]:
        key = cls(account=account, name=name, created_by=created_by, site_id=secrets.token_hex(10))
        issued = key._new_secrets()
        key.save()
        return key, issued

    def rotate(self) -> IssuedSecrets:
        """New secrets for the same site id; the old ones stop working at once."""
        issued = self._new_secrets()
        self.rotated_at = timezone.now()
        self.save(update_fields=["api_key_hash", "write_key_hash", "tracker_key", "rotated_at"])
        return issued

    def revoke(self) -> None:
        self.revoked_at = timezone.now()
        self.save(update_fields=["revoked_at"])

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def _new_secrets(self) -> IssuedSecrets:
        api_key, write_key = secrets.token_hex(20), secrets.token_urlsafe(24)
        self.api_key_hash, self.write_key_hash = _digest(api_key), _digest(write_key)
        self.tracker_key = f"pk_{secrets.token_urlsafe(18)}"
        return IssuedSecrets(self.site_id, api_key, write_key, self.tracker_key)


class AuditEntry(models.Model):
    """Who changed what from the dashboard, and when. Account plane: each account its own."""

    actor = models.CharField(max_length=254)  # the teammate's email, kept as they were then
    action = models.CharField(max_length=60)
    target = models.CharField(max_length=300, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    planes = {ACCOUNT}

    def __str__(self) -> str:
        return f"{self.actor} {self.action} {self.target}"

    @classmethod
    def record(cls, actor: "User", action: str, target: str = "", **detail) -> "AuditEntry":
        return cls.objects.create(
            actor=actor.email, action=action, target=target[:300], detail=detail
        )


class SchemaTemplate(models.Model):
    """The SQL that builds an account schema as of one state of the migrations.

    Dumped from the template schema (accounts/provisioning.py) after every migration run, so
    creating an account executes this script instead of running every migration again.
    """

    fingerprint = models.CharField(max_length=64, unique=True)
    script = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    planes = {CONTROL}

    def __str__(self) -> str:
        return f"template {self.fingerprint[:12]}"


class SpareSchema(models.Model):
    """An account schema built from the template ahead of time, waiting to be claimed.

    Creating an account renames one to the account's schema (accounts/pool.py). Until then no
    Account or Domain row names it, so no host can reach it. `fingerprint` is the migration
    state it is current with: claims take only spares current with the code's migrations, and
    it is blank while the migration runner brings the spare forward.
    """

    schema_name = models.CharField(max_length=63, unique=True)
    fingerprint = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    planes = {CONTROL}

    def __str__(self) -> str:
        return self.schema_name


class AccountMove(models.Model):
    """One move of an account's schema to another data server, with its progress."""

    class Phase(models.TextChoices):
        QUEUED = "queued", "Queued"
        COPYING = "copying", "Copying the schema"
        PAUSED = "paused", "Drain paused, final copy"
        VERIFYING = "verifying", "Verifying rows and checksums"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        CLEANED = "cleaned", "Done, old copy removed"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="moves")
    source = models.CharField(max_length=31)
    target = models.CharField(max_length=31)
    phase = models.CharField(max_length=10, choices=Phase.choices, default=Phase.QUEUED)
    detail = models.CharField(max_length=300, blank=True)
    started_by = models.CharField(max_length=254, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    tables = models.PositiveIntegerField(default=0)
    tables_done = models.PositiveIntegerField(default=0)
    rows = models.BigIntegerField(default=0)
    write_pause_seconds = models.FloatField(null=True, blank=True)
    # Where the old copy is kept until `cleanup_move`: its server and (renamed) schema.
    old_schema = models.CharField(max_length=63, blank=True)
    error = models.TextField(blank=True)

    planes = {CONTROL}

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.account} {self.source} → {self.target} ({self.phase})"

    @property
    def is_running(self) -> bool:
        return self.phase in {
            self.Phase.QUEUED, self.Phase.COPYING, self.Phase.PAUSED, self.Phase.VERIFYING
        }  # fmt: skip

    def advance(self, phase: str, detail: str = "", **fields) -> None:
        """Record progress at once, outside any transaction, so staff see it while it runs."""
        self.phase, self.detail = phase, detail[:300]
        for name, value in fields.items():
            setattr(self, name, value)
        AccountMove.objects.filter(pk=self.pk).update(phase=phase, detail=self.detail, **fields)


class LoginFailure(models.Model):
    """A failed login, kept for the throttling window (accounts/throttle.py). Control plane:
    an address guessing on many accounts' hosts is counted once, on every web node."""

    # "identity:<schema>:<email>" or "address:<ip>"
    key = models.CharField(max_length=400)
    created_at = models.DateTimeField(default=timezone.now)

    planes = {CONTROL}

    class Meta:
        indexes = [models.Index(fields=["key", "created_at"])]

    def __str__(self) -> str:
        return f"{self.key} at {self.created_at}"
