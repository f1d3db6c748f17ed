"""Ferry's settings: one file, read from the environment.

Defaults run Ferry locally (`make run`); production differs only by environment values, which
the README lists. Every helper fails loudly on a value it cannot read.
"""

import os
import re
import sys
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("FERRY_VAR_DIR") or BASE_DIR / "var")

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    if value.lower() in TRUE_WORDS:
        return True
    if value.lower() in FALSE_WORDS:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean (use true or false)")


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not a whole number") from None


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def process_role(argv: list[str]) -> str:
    """What this process is, as PostgreSQL shows it (`pg_stat_activity.application_name`):
    `ferry web` for gunicorn, `ferry drain` for `manage.py drain`, and so on."""
    program = Path(argv[0]).name if argv else ""
    if argv and "gunicorn" in argv[0]:  # bin/gunicorn or python -m gunicorn
        return "ferry web"
    if program == "manage.py" and len(argv) > 1:
        return f"ferry {argv[1]}"[:63]
    return f"ferry {program}"[:63] if program else "ferry"


def database_from_url(url: str) -> dict:
    """Django's DATABASES entry for a postgres:// URL (host may be a socket directory)."""
    parts = urlsplit(url)
    if parts.scheme not in {"postgres", "postgresql"}:
        raise ImproperlyConfigured(
            f"DATABASE_URL must be a postgresql:// URL, not {parts.scheme}://"
        )
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    # Fail fast when the server is unreachable instead of hanging a request or a worker.
    query.setdefault("connect_timeout", "5")
    query.setdefault("application_name", process_role(sys.argv))
    host = query.pop("host", None) or unquote(parts.hostname or "")
    return {
        # django-tenants' backend, plus the account's server (see accounts/backend/base.py).
        "ENGINE": "accounts.backend",
        "NAME": unquote(parts.path.lstrip("/")),
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": host,
        "PORT": str(parts.port or ""),
        "OPTIONS": query,
        "CONN_MAX_AGE": env_int("DB_CONN_MAX_AGE", 60),
        "CONN_HEALTH_CHECKS": True,
    }


DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY", "")
if not SECRET_KEY:
    if not env_bool("FERRY_DEV", True):
        raise ImproperlyConfigured("SECRET_KEY must be set when FERRY_DEV is false")
    # Local runs only: a fixed key so sessions survive restarts. Production sets SECRET_KEY.
    SECRET_KEY = "ferry-local-development-key-not-for-production-use-0123456789"

# Dashboards live at <slug>.<BASE_DOMAIN>, the status page at status.<BASE_DOMAIN>; any other
# allowed host is the public side (staff console, admin, ingestion API).
BASE_DOMAIN = env_str("BASE_DOMAIN", "localhost")
STATUS_SUBDOMAIN = "status"
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", [BASE_DOMAIN, f".{BASE_DOMAIN}", "127.0.0.1", "[::1]"])
# Shown in links the server builds outside a request (emails from commands, printed URLs).
SITE_SCHEME = env_str("SITE_SCHEME", "http")
SITE_PORT = env_str("SITE_PORT", env_str("PORT", "8000"))
_DEFAULT_PORT = {"http": "80", "https": "443"}.get(SITE_SCHEME)
# Where the public side (ingestion API, tracker script) is reached from outside.
PUBLIC_URL = env_str(
    "PUBLIC_URL",
    f"{SITE_SCHEME}://{BASE_DOMAIN}"
    + ("" if SITE_PORT in ("", _DEFAULT_PORT) else f":{SITE_PORT}"),
)

# --- Database -----------------------------------------------------------------------------

DATABASE_URL = env_str("DATABASE_URL", "")
if not DATABASE_URL:
    # No server given: start (or join) Ferry's own cluster and hand its URL to child
    # processes (gunicorn workers, test servers) so they join the same one.
    from config import embedded_postgres

    DATABASE_URL = embedded_postgres.start(
        embedded_postgres.default_pgdata(BASE_DIR),
        throwaway=env_bool("FERRY_PGDATA_THROWAWAY", False),
    )
    os.environ["DATABASE_URL"] = DATABASE_URL

DATABASES = {"default": database_from_url(DATABASE_URL)}


def data_servers_from_env(value: str) -> dict[str, str]:
    """`name=url,name=url` → {name: url}; the primary is always there as `default`."""
    servers: dict[str, str] = {}
    for pair in (item.strip() for item in value.split(",")):
        if not pair:
            continue
        name, sep, url = pair.partition("=")
        name = name.strip()
        if not sep or not re.fullmatch(r"[a-z][a-z0-9_]{0,30}", name):
            raise ImproperlyConfigured(
                f"FERRY_DATA_SERVERS: {pair!r} is not name=postgresql://… "
                "(names: lowercase letters, digits, underscores)"
            )
        if name in servers:
            raise ImproperlyConfigured(f"FERRY_DATA_SERVERS names {name!r} twice")
        database_from_url(url.strip())  # fails loudly on a bad URL
        servers[name] = url.strip()
    servers.setdefault("default", DATABASE_URL)
    return servers


# Where account schemas may live: the primary (`default`, which also holds the control plane)
# and any others listed in FERRY_DATA_SERVERS. Each account records its server; the backend
# connects there when the account is activated.
DATA_SERVER_URLS = data_servers_from_env(env_str("FERRY_DATA_SERVERS", ""))
DATA_SERVERS = {
    name: {
        key: value
        for key, value in database_from_url(url).items()
        if key in {"NAME", "USER", "PASSWORD", "HOST", "PORT", "OPTIONS"}
    }
    for name, url in DATA_SERVER_URLS.items()
}
# A connection caches the catalog of every table it touches, per schema; close it after this
# many distinct account schemas (0: never). See README, "memory per connection".
DB_RECYCLE_AFTER_SCHEMAS = env_int("DB_RECYCLE_AFTER_SCHEMAS", 200)
# Days between staff confirming an account's deletion and its schema being dropped.
ACCOUNT_DELETION_GRACE_DAYS = env_int("ACCOUNT_DELETION_GRACE_DAYS", 7)
# Spare account schemas the refill worker keeps built ahead (accounts/pool.py); creating an
# account claims one instead of building its schema. 0 turns the pool off.
ACCOUNT_SPARE_POOL = env_int("ACCOUNT_SPARE_POOL", 20)
# Parallel jobs of pg_dump and pg_restore when move_account copies a schema.
MOVE_COPY_JOBS = env_int("MOVE_COPY_JOBS", 2)
DATABASE_ROUTERS = ["accounts.routers.PlaneRouter"]
TENANT_SYNC_ROUTER = "accounts.routers.PlaneRouter"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Apps: the control plane (public schema) and the data plane (one schema per account) -----

SHARED_APPS = [
    # Before django_tenants: its `migrate_schemas`/`migrate` commands are Ferry's own.
    "accounts",
    "django_tenants",
    "ingest",
    "status",
    "maintenance",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.admin",
    "django.contrib.staticfiles",
    # GinIndex options (segments.Person): `migrate` to an earlier state checks them.
    "django.contrib.postgres",
    "django_htmx",
]
TENANT_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "accounts",
    "segments",
    "messaging",
    # Control-plane models only; in account schemas it sets the tables' storage parameters.
    "maintenance",
]
INSTALLED_APPS = SHARED_APPS + [app for app in TENANT_APPS if app not in SHARED_APPS]

# Issue `SET search_path` only when the schema changes, not before every query.
TENANT_LIMIT_SET_CALLS = True
TENANT_MODEL = "accounts.Account"
TENANT_DOMAIN_MODEL = "accounts.Domain"
PUBLIC_SCHEMA_URLCONF = "config.urls_public"
STATUS_URLCONF = "config.urls_status"
ROOT_URLCONF = "config.urls_tenant"
AUTH_USER_MODEL = "accounts.User"

MIDDLEWARE = [
    # Names the request (X-Request-ID, on every log record) and counts it, whatever answers.
    "config.logs.RequestIdMiddleware",
    "config.metrics.RequestMetricsMiddleware",
    # /healthz and /readyz before anything else, SSL redirect included: load balancers probe
    # over plain HTTP.
    "config.health.HealthMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files are answered before any database work, so they keep working without it.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # The status host's public documents come from the snapshot on disk, before anything
    # that could need the database.
    "status.middleware.StatusSnapshotMiddleware",
    "status.middleware.ServerErrorCounterMiddleware",
    "accounts.middleware.AccountRoutingMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.csp",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.context_processors.ferry",
                "ingest.context_processors.ingest_backlog",
                "status.context_processors.status_banner",
            ],
        },
    },
]

WSGI_APPLICATION = "config.wsgi.application"

# --- Auth ---------------------------------------------------------------------------------

PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
PASSWORD_RESET_TIMEOUT = 60 * 60 * 24
# Login throttling (accounts/throttle.py): failures allowed within the window, per email on an
# account's host and per client address across all hosts.
LOGIN_FAILURES_PER_IDENTITY = env_int("LOGIN_FAILURES_PER_IDENTITY", 5)
LOGIN_FAILURES_PER_ADDRESS = env_int("LOGIN_FAILURES_PER_ADDRESS", 30)
LOGIN_THROTTLE_WINDOW_SECONDS = env_int("LOGIN_THROTTLE_WINDOW_SECONDS", 15 * 60)
INVITATION_MAX_AGE = 60 * 60 * 24 * 7

# --- Sessions, cookies, security ----------------------------------------------------------

# Cookies are host-only (no SESSION_COOKIE_DOMAIN): a session from one account's host is
# never sent to another's, and each account schema keeps its own session table anyway.
SESSION_COOKIE_NAME = "ferry_session"
SESSION_COOKIE_AGE = 60 * 60 * 24 * 14
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
if env_bool("BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "object-src": [CSP.NONE],
}

# --- Ingestion ----------------------------------------------------------------------------

# The local spool of accepted, not yet applied items (SQLite, on this node's disk).
INGEST_SPOOL_PATH = Path(
    os.environ.get("INGEST_SPOOL_PATH") or VAR_DIR / "spool" / "ingest.sqlite3"
)
# Items per drain transaction. Large batches coalesce: several changes to one person become one
# row write and several events of one name one summary update (bench/ingest_drain.py).
INGEST_BATCH_SIZE = env_int("INGEST_BATCH_SIZE", 50_000)
INGEST_LEASE_SECONDS = env_int("INGEST_LEASE_SECONDS", 30)
# Requests per second per API credential on this node (0: no limit), and the burst allowed.
# Customer.io's published Track API limit is 1,000 requests a second.
INGEST_RATE_LIMIT_PER_SECOND = env_int("INGEST_RATE_LIMIT_PER_SECOND", 1000)
INGEST_RATE_LIMIT_BURST = env_int("INGEST_RATE_LIMIT_BURST", 2000)
# Uploaded CSV imports, one folder per account schema.
IMPORTS_DIR = Path(os.environ.get("IMPORTS_DIR") or VAR_DIR / "imports")
IMPORT_MAX_BYTES = env_int("IMPORT_MAX_BYTES", 1024 * 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024

# --- Maintenance: retention and the governor (maintenance/governor.py) ----------------------

# How long accounts keep their data, in days, unless staff set a ceiling of their own for an
# account; each account may choose shorter.
RETENTION_DEFAULT_DAYS = {
    "events": env_int("RETENTION_EVENTS_DAYS", 365),
    "deliveries": env_int("RETENTION_DELIVERIES_DAYS", 365),
    "dead_letters": env_int("RETENTION_DEAD_LETTERS_DAYS", 30),
}
RETENTION_MIN_DAYS = 1
RETENTION_MAX_DAYS = 3650
# Rows deleted per batch (one short transaction each) and how often cleanup starts a round.
RETENTION_BATCH_SIZE = env_int("RETENTION_BATCH_SIZE", 5000)
RETENTION_EVERY_SECONDS = env_int("RETENTION_EVERY_SECONDS", 900)
# Past this many rows deleted from one table in a round, the round turns autovacuum off for
# that table and vacuums it once at the end, inside its governor slot (maintenance/retention.py).
RETENTION_VACUUM_TAKEOVER_ROWS = env_int("RETENTION_VACUUM_TAKEOVER_ROWS", 50_000)
# Background maintenance slots across all processes; at most one per account.
GOVERNOR_MAX_SLOTS = env_int("GOVERNOR_MAX_SLOTS", 2)
# Pause maintenance while this many spooled items wait, or the oldest waits this long (s).
GOVERNOR_MAX_BACKLOG = env_int("GOVERNOR_MAX_BACKLOG", 50_000)
GOVERNOR_MAX_BACKLOG_AGE = env_int("GOVERNOR_MAX_BACKLOG_AGE", 10)
# Share of the time a slot works (0.5: it sleeps as long as each batch took); halved while
# more than GOVERNOR_BUSY_QUERIES other queries are active in PostgreSQL.
GOVERNOR_DUTY = float(env_int("GOVERNOR_DUTY_PERCENT", 50)) / 100
GOVERNOR_BUSY_QUERIES = env_int("GOVERNOR_BUSY_QUERIES", 4)
GOVERNOR_STALE_SECONDS = env_int("GOVERNOR_STALE_SECONDS", 900)
# Scheduling priority (nice, 0 to 19) of a slot's PostgreSQL backend where Ferry may set it
# (a server on this host); 0 leaves it alone.
GOVERNOR_NICE = env_int("GOVERNOR_NICE", 19)
if not 0 < GOVERNOR_DUTY <= 1:
    raise ImproperlyConfigured("GOVERNOR_DUTY_PERCENT must be from 1 to 100")
if not 0 <= GOVERNOR_NICE <= 19:
    raise ImproperlyConfigured("GOVERNOR_NICE must be from 0 to 19")
if GOVERNOR_MAX_SLOTS < 1:
    raise ImproperlyConfigured("GOVERNOR_MAX_SLOTS must be at least 1")

# --- Cache: every key carries the schema it was written from -------------------------------

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "KEY_FUNCTION": "django_tenants.cache.make_key",
        "REVERSE_KEY_FUNCTION": "django_tenants.cache.reverse_key",
    }
}

# --- Email --------------------------------------------------------------------------------

# With SMTP_HOST set, mail goes out through that server; otherwise every message is written to
# var/mail, the local sink for development and the demo.
if env_str("SMTP_HOST", ""):
    DEFAULT_MAILER = {
        "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "OPTIONS": {
            "host": env_str("SMTP_HOST", ""),
            "port": env_int("SMTP_PORT", 587),
            "username": env_str("SMTP_USERNAME", ""),
            "password": env_str("SMTP_PASSWORD", ""),
            "use_tls": env_bool("SMTP_USE_TLS", True),
            "timeout": env_int("SMTP_TIMEOUT", 20),
        },
    }
else:
    DEFAULT_MAILER = {
        "BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "OPTIONS": {"file_path": VAR_DIR / "mail"},
    }
# Broadcasts have a mailer of their own, so production can send them through a provider's
# SMTP relay (with its tracking webhooks) while Ferry's own mail goes elsewhere.
if env_str("BROADCAST_SMTP_HOST", ""):
    BROADCAST_MAILER = {
        "BACKEND": "messaging.mail.BroadcastSMTPBackend",
        "OPTIONS": {
            "host": env_str("BROADCAST_SMTP_HOST", ""),
            "port": env_int("BROADCAST_SMTP_PORT", 587),
            "username": env_str("BROADCAST_SMTP_USERNAME", ""),
            "password": env_str("BROADCAST_SMTP_PASSWORD", ""),
            "use_tls": env_bool("BROADCAST_SMTP_USE_TLS", True),
            "timeout": env_int("BROADCAST_SMTP_TIMEOUT", 20),
        },
    }
elif DEFAULT_MAILER["BACKEND"].endswith(".smtp.EmailBackend"):
    BROADCAST_MAILER = {**DEFAULT_MAILER, "BACKEND": "messaging.mail.BroadcastSMTPBackend"}
else:
    BROADCAST_MAILER = DEFAULT_MAILER
MAILERS = {"default": DEFAULT_MAILER, "broadcasts": BROADCAST_MAILER}
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", f"Ferry <ferry@{BASE_DOMAIN}>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- Messaging ----------------------------------------------------------------------------

# Links in messages (unsubscribe, preferences, open pixel, clicks) point at the public side.
MESSAGING_LINK_BASE_URL = env_str("MESSAGING_LINK_BASE_URL", PUBLIC_URL)
MESSAGING_MESSAGE_ID_DOMAIN = env_str("MESSAGING_MESSAGE_ID_DOMAIN", f"ferry.{BASE_DOMAIN}")
# How long links stay valid: unsubscribing must work for a long time; tracking less so.
MESSAGING_UNSUBSCRIBE_MAX_AGE = env_int("MESSAGING_UNSUBSCRIBE_MAX_AGE", 60 * 60 * 24 * 365)
MESSAGING_TRACKING_MAX_AGE = env_int("MESSAGING_TRACKING_MAX_AGE", 60 * 60 * 24 * 90)
# Messages per second per sending worker (0: as fast as the mail server takes them).
MESSAGING_SEND_RATE = env_int("MESSAGING_SEND_RATE", 200)
# SMTP connections each sending worker keeps open in parallel.
MESSAGING_SMTP_CONNECTIONS = env_int("MESSAGING_SMTP_CONNECTIONS", 4)
# Deliveries claimed per round; after a crash at most this many are in doubt.
MESSAGING_CLAIM_BATCH = env_int("MESSAGING_CLAIM_BATCH", 100)
# A claim older than this belonged to a sender that died mid-batch.
MESSAGING_CLAIM_TIMEOUT = env_int("MESSAGING_CLAIM_TIMEOUT", 600)
# A recipient refused for now (a 4xx at RCPT TO: greylisting, a full mailbox) is tried again
# after this many seconds, doubling each time up to MESSAGING_RETRY_MAX_SECONDS, and fails
# after MESSAGING_MAX_ATTEMPTS refusals (the defaults: 8 tries over about 16 hours).
MESSAGING_RETRY_SECONDS = env_int("MESSAGING_RETRY_SECONDS", 300)
MESSAGING_RETRY_MAX_SECONDS = env_int("MESSAGING_RETRY_MAX_SECONDS", 4 * 60 * 60)
MESSAGING_MAX_ATTEMPTS = env_int("MESSAGING_MAX_ATTEMPTS", 8)
# Provider webhooks through django-anymail: Mailgun's, at /email/webhooks/mailgun/, which
# needs its signing key and (recommended) anymail's shared basic-auth secret.
ANYMAIL = {
    "WEBHOOK_SECRET": env_str("ANYMAIL_WEBHOOK_SECRET", "") or None,
    "MAILGUN_WEBHOOK_SIGNING_KEY": env_str("MAILGUN_WEBHOOK_SIGNING_KEY", ""),
}

# --- Status page --------------------------------------------------------------------------

# Where the published snapshot of the status host lives (page, feeds, API documents); the
# status host is answered from here without PostgreSQL. Share it between web nodes.
STATUS_SNAPSHOT_DIR = Path(os.environ.get("STATUS_SNAPSHOT_DIR") or VAR_DIR / "status")
STATUS_PAGE_NAME = env_str("STATUS_PAGE_NAME", "Ferry")
# Statuspage page ids are 12 base36 characters.
STATUS_PAGE_ID = env_str("STATUS_PAGE_ID", "ferrystatus0")
if not (len(STATUS_PAGE_ID) == 12 and STATUS_PAGE_ID.isalnum() and STATUS_PAGE_ID.islower()):
    raise ImproperlyConfigured(f"STATUS_PAGE_ID={STATUS_PAGE_ID!r} is not 12 base36 characters")
STATUS_CONFIRM_MAX_AGE = 60 * 60 * 24 * 7
STATUS_UNSUBSCRIBE_MAX_AGE = 60 * 60 * 24 * 365
# Notification retries: 30 s, 1 min, 2 min, ... capped at an hour, then given up (staff retry).
STATUS_NOTIFY_BACKOFF_SECONDS = env_int("STATUS_NOTIFY_BACKOFF_SECONDS", 30)
STATUS_NOTIFY_BACKOFF_CAP = 60 * 60
STATUS_NOTIFY_MAX_ATTEMPTS = env_int("STATUS_NOTIFY_MAX_ATTEMPTS", 10)
STATUS_WEBHOOK_TIMEOUT = env_int("STATUS_WEBHOOK_TIMEOUT", 10)
# Webhooks to loopback or private addresses are refused unless this is true.
STATUS_WEBHOOK_ALLOW_PRIVATE = env_bool("STATUS_WEBHOOK_ALLOW_PRIVATE", False)

# --- Static files, i18n -------------------------------------------------------------------

STATIC_URL = "/static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT") or VAR_DIR / "static")
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Logs, metrics, health ------------------------------------------------------------------

# One JSON object per line (`LOG_FORMAT=text` for a terminal), each with its request's id.
LOG_FORMAT = env_str("LOG_FORMAT", "json")
if LOG_FORMAT not in ("json", "text"):
    raise ImproperlyConfigured(f"LOG_FORMAT={LOG_FORMAT!r} must be json or text")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "config.logs.RequestIdFilter"}},
    "formatters": {
        "json": {"()": "config.logs.JsonFormatter"},
        "text": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# prometheus_client's multiprocess mode: every process (gunicorn workers, drain, status and
# import workers) writes its counters here and /metrics adds them up. It must be in the
# environment before prometheus_client is first imported, which happens after the settings.
METRICS_DIR = Path(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or VAR_DIR / "metrics")
METRICS_DIR.mkdir(parents=True, exist_ok=True)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(METRICS_DIR)
# Scrapers send `Authorization: Bearer <METRICS_TOKEN>`; without it only staff read /metrics.
METRICS_TOKEN = env_str("METRICS_TOKEN", "")
# /readyz reports the drain as lagging when the oldest waiting item is older than this.
READYZ_MAX_DRAIN_LAG_SECONDS = env_int("READYZ_MAX_DRAIN_LAG_SECONDS", 300)
