"""Who may use which URL: one entry for every URL pattern of the three sides.

`tests/isolation/test_every_url.py` walks the resolvers of config/urls_tenant.py,
config/urls_public.py and config/urls_status.py; a pattern without an entry here fails the
suite with the line to add. Each entry names a concrete path (placeholders in braces are
filled with rows made by `tests/isolation/conftest.py`), the method to use, and the roles
that may use it. Every other role must get 401, 403, 404 or a redirect to a login page, and
its response must not contain any of acme's markers.

The roles (the cast of tests/conftest.py):

| role      | who                          | where they ask                                          |
|-----------|------------------------------|---------------------------------------------------------|
| owner     | Alice, acme's owner          | signed in on acme's host (account URLs) or replaying    |
| admin     | Adam, acme's admin           |   that session cookie on the public and status hosts    |
| member    | Mia, acme's member           |                                                         |
| viewer    | Vic, acme's viewer           |                                                         |
| staff     | Stella, staff                | signed in on the public host, or replaying that cookie  |
| non_staff | Paul, control plane, no staff|   on acme's host and the status host                    |
| outsider  | Charlie, globex's owner      | signed in on globex's host asking for the same path,    |
|           |                              |   acme's ids included; replaying his cookie elsewhere   |
| anonymous | nobody signed in             |                                                         |

Account URLs are asked on acme's host, except by the outsider (globex's host). So an account
page without ids in its path is the outsider's own page (he owns globex): use `own(...)`,
which adds him. A path with acme's ids must find nothing for him.
"""

from dataclasses import dataclass, field

OWNER, ADMIN, MEMBER, VIEWER = "owner", "admin", "member", "viewer"
STAFF, NON_STAFF, OUTSIDER, ANONYMOUS = "staff", "non_staff", "outsider", "anonymous"
ROLES = (OWNER, ADMIN, MEMBER, VIEWER, STAFF, NON_STAFF, OUTSIDER, ANONYMOUS)

EVERYONE = frozenset(ROLES)
NOBODY: frozenset[str] = frozenset()
TEAM = frozenset({OWNER, ADMIN, MEMBER, VIEWER})  # every teammate, viewers included
EDITORS = frozenset({OWNER, ADMIN, MEMBER})  # teammates who may change data
MANAGERS = frozenset({OWNER, ADMIN})  # teammates who manage the team and API keys
STAFF_ONLY = frozenset({STAFF})


def own(roles: frozenset[str]) -> frozenset[str]:
    """An account page without ids in its path: the outsider reaches his own account's."""
    return roles | {OUTSIDER} if OWNER in roles else roles


@dataclass(frozen=True)
class Access:
    path: str
    allowed: frozenset[str]
    method: str = "GET"
    data: dict = field(default_factory=dict)
    # An allowed role may be sent to a login page (logout does that to everyone).
    login_redirect_ok: bool = False


# --- Account dashboards: <slug>.<BASE_DOMAIN> (config/urls_tenant.py) -----------------------

TENANT_URLS: dict[str, Access] = {
    "": Access("/", own(TEAM)),
    "people/": Access("/people/", own(TEAM)),
    "people/export.csv": Access("/people/export.csv", own(TEAM)),
    "people/<int:person_id>/": Access("/people/{person}/", TEAM),
    # No id in the path, but acme's ids in the form: nothing for the outsider.
    "people/segments/": Access(
        "/people/segments/",
        EDITORS,
        "POST",
        {"segment": "{segment}", "action": "add", "person": "{person}"},
    ),
    "people/<int:person_id>/attributes/": Access(
        "/people/{person}/attributes/", EDITORS, "POST", {"name": "plan", "value": "gold"}
    ),
    "people/<int:person_id>/attributes/<str:name>/delete/": Access(
        "/people/{person}/attributes/plan/delete/", EDITORS, "POST"
    ),
    "people/<int:person_id>/delete/": Access("/people/{person}/delete/", EDITORS, "POST"),
    "audit/": Access("/audit/", own(MANAGERS)),
    "imports/": Access("/imports/", own(TEAM)),
    "imports/<int:import_id>/": Access("/imports/{import}/", TEAM),
    "imports/<int:import_id>/start/": Access(
        "/imports/{import}/start/",
        EDITORS,
        "POST",
        {"identifier_column": "email", "identifier_kind": "email", "map_0": "", "map_1": "plan"},
    ),
    "segments/": Access("/segments/", own(TEAM)),
    "segments/new/": Access("/segments/new/", own(EDITORS)),
    "segments/<int:segment_id>/": Access("/segments/{segment}/", TEAM),
    "segments/<int:segment_id>/edit/": Access("/segments/{segment}/edit/", EDITORS),
    "segments/<int:segment_id>/delete/": Access("/segments/{segment}/delete/", EDITORS, "POST"),
    "segments/<int:segment_id>/members/": Access(
        "/segments/{segment}/members/", EDITORS, "POST", {"action": "add", "person": "{person}"}
    ),
    "segments/<int:segment_id>/upload/": Access("/segments/{segment}/upload/", EDITORS, "POST"),
    "broadcasts/": Access("/broadcasts/", own(TEAM)),
    "broadcasts/new/": Access("/broadcasts/new/", own(EDITORS)),
    "broadcasts/<int:broadcast_id>/": Access("/broadcasts/{broadcast}/", TEAM),
    "broadcasts/<int:broadcast_id>/edit/": Access("/broadcasts/{broadcast}/edit/", EDITORS),
    # Without htmx the preview redirects to the broadcast page (302, not to a login).
    "broadcasts/<int:broadcast_id>/preview/": Access("/broadcasts/{broadcast}/preview/", TEAM),
    "broadcasts/<int:broadcast_id>/test/": Access(
        "/broadcasts/{broadcast}/test/", EDITORS, "POST", {"email": "iso-test@example.com"}
    ),
    "broadcasts/<int:broadcast_id>/send/": Access(
        "/broadcasts/{broadcast}/send/", EDITORS, "POST", {"when": "now"}
    ),
    "broadcasts/<int:broadcast_id>/cancel/": Access(
        "/broadcasts/{broadcast}/cancel/", EDITORS, "POST"
    ),
    "deliveries/": Access("/deliveries/", own(TEAM)),
    "deliveries/<int:delivery_id>/": Access("/deliveries/{delivery}/", TEAM),
    "topics/": Access("/topics/", own(TEAM)),
    "topics/<int:topic_id>/delete/": Access("/topics/{topic}/delete/", EDITORS, "POST"),
    "login/": Access("/login/", EVERYONE),
    "logout/": Access("/logout/", EVERYONE, "POST", login_redirect_ok=True),
    "password/": Access("/password/", own(TEAM)),
    "password/done/": Access("/password/done/", own(TEAM)),
    "password/reset/": Access("/password/reset/", EVERYONE),
    "password/reset/sent/": Access("/password/reset/sent/", EVERYONE),
    # A link for another account's user shows "This link no longer works" (200), no data.
    "password/reset/<uidb64>/<token>/": Access(
        "/password/reset/{reset_uid}/{reset_token}/", EVERYONE
    ),
    "password/reset/complete/": Access("/password/reset/complete/", EVERYONE),
    "team/": Access("/team/", own(TEAM)),
    "team/invite/": Access(
        "/team/invite/", own(MANAGERS), "POST", {"email": "new@example.com", "role": "member"}
    ),
    "team/<int:user_id>/role/": Access("/team/{mia}/role/", MANAGERS, "POST", {"role": "viewer"}),
    "team/<int:user_id>/remove/": Access("/team/{mia}/remove/", MANAGERS, "POST"),
    "team/invitations/<int:invitation_id>/revoke/": Access(
        "/team/invitations/{invitation}/revoke/", MANAGERS, "POST"
    ),
    "settings/api-keys/": Access("/settings/api-keys/", own(TEAM)),
    "settings/api-keys/new/": Access(
        "/settings/api-keys/new/", own(MANAGERS), "POST", {"name": "Another"}
    ),
    "settings/api-keys/<int:key_id>/rotate/": Access(
        "/settings/api-keys/{api_key}/rotate/", MANAGERS, "POST"
    ),
    "settings/api-keys/<int:key_id>/revoke/": Access(
        "/settings/api-keys/{api_key}/revoke/", MANAGERS, "POST"
    ),
    # Everyone on the team reads it (tests/maintenance/); only owners and admins change it.
    "settings/retention/": Access(
        "/settings/retention/", own(MANAGERS), "POST", {"events_days": "100"}
    ),
    # Anyone with the link, on the account that issued it; teammates already signed in see
    # the form too (an invitation is for an email address, not for the current session).
    "invitations/<str:token>/": Access("/invitations/{invitation_token}/", EVERYONE - {OUTSIDER}),
}

# --- The public side: <BASE_DOMAIN> and other hosts (config/urls_public.py) -----------------

NOT_A_SESSION_API = NOBODY  # ingestion takes API credentials, never a session: 401 to all

PUBLIC_URLS: dict[str, Access] = {
    "": Access("/", EVERYONE),
    "staff/ingest/": Access("/staff/ingest/", STAFF_ONLY),
    "staff/ingest/dead-letters/<int:letter_id>/replay/": Access(
        "/staff/ingest/dead-letters/{dead_letter}/replay/", STAFF_ONLY, "POST"
    ),
    "staff/ingest/dead-letters/<int:letter_id>/discard/": Access(
        "/staff/ingest/dead-letters/{dead_letter}/discard/", STAFF_ONLY, "POST"
    ),
    "staff/maintenance/": Access("/staff/maintenance/", STAFF_ONLY),
    "staff/maintenance/storage/": Access("/staff/maintenance/storage/", STAFF_ONLY),
    "staff/maintenance/accounts/<slug:slug>/retention/": Access(
        "/staff/maintenance/accounts/acme/retention/",
        STAFF_ONLY,
        "POST",
        {"events_limit_days": "400"},
    ),
    "staff/status/": Access("/staff/status/", STAFF_ONLY),
    "staff/status/components/<str:code>/status/": Access(
        "/staff/status/components/{component}/status/",
        STAFF_ONLY,
        "POST",
        {"status": "degraded_performance"},
    ),
    "staff/status/incidents/new/": Access("/staff/status/incidents/new/", STAFF_ONLY),
    "staff/status/incidents/<str:code>/": Access("/staff/status/incidents/{incident}/", STAFF_ONLY),
    "staff/status/incidents/<str:code>/resolve/": Access(
        "/staff/status/incidents/{incident}/resolve/", STAFF_ONLY, "POST"
    ),
    "staff/status/incidents/<str:code>/postmortem/": Access(
        "/staff/status/incidents/{incident}/postmortem/", STAFF_ONLY, "POST"
    ),
    "staff/status/maintenances/new/": Access("/staff/status/maintenances/new/", STAFF_ONLY),
    "staff/status/preview/": Access("/staff/status/preview/", STAFF_ONLY, "POST", {"body": "*x*"}),
    "staff/status/templates/": Access("/staff/status/templates/", STAFF_ONLY),
    "staff/status/templates/<int:template_id>/delete/": Access(
        "/staff/status/templates/{template}/delete/", STAFF_ONLY, "POST"
    ),
    "staff/status/subscribers/": Access("/staff/status/subscribers/", STAFF_ONLY),
    "staff/status/notifications/<int:notification_id>/retry/": Access(
        "/staff/status/notifications/{notification}/retry/", STAFF_ONLY, "POST"
    ),
    "staff/": Access("/staff/", STAFF_ONLY),
    "staff/login/": Access("/staff/login/", EVERYONE),
    "staff/logout/": Access("/staff/logout/", EVERYONE, "POST", login_redirect_ok=True),
    "staff/accounts/<slug:slug>/": Access("/staff/accounts/acme/", STAFF_ONLY),
    # With one data server the form has no choice to make: staff are sent back with a message.
    "staff/accounts/<slug:slug>/move/": Access(
        "/staff/accounts/acme/move/", STAFF_ONLY, "POST", {"target": "default"}
    ),
    "staff/accounts/<slug:slug>/moves/<int:move_id>/cleanup/": Access(
        "/staff/accounts/acme/moves/{move}/cleanup/", STAFF_ONLY, "POST"
    ),
    "staff/accounts/<slug:slug>/export/": Access(
        "/staff/accounts/acme/export/", STAFF_ONLY, "POST"
    ),
    "staff/accounts/<slug:slug>/delete/": Access(
        "/staff/accounts/acme/delete/", STAFF_ONLY, "POST", {"confirmation": "acme"}
    ),
    # Prometheus: staff, or a scraper with the METRICS_TOKEN bearer token (tests/config).
    "metrics": Access("/metrics", STAFF_ONLY),
    # Customer.io Track API and the Segment spec: credentials, not sessions.
    r"^api/v1/customers/(?P<identifier>[\s\S]+)/events$": Access(
        "/api/v1/customers/iso-1/events", NOT_A_SESSION_API, "POST", {"name": "x"}
    ),
    r"^api/v1/customers/(?P<identifier>[\s\S]+)$": Access(
        "/api/v1/customers/iso-1", NOT_A_SESSION_API, "PUT", {"email": "a@b.c"}
    ),
    "api/v1/events": Access("/api/v1/events", NOT_A_SESSION_API, "POST", {"name": "x"}),
    "api/v1/segments/<str:segment_id>/add_customers": Access(
        "/api/v1/segments/{segment}/add_customers", NOT_A_SESSION_API, "POST", {"ids": ["a"]}
    ),
    "api/v1/segments/<str:segment_id>/remove_customers": Access(
        "/api/v1/segments/{segment}/remove_customers", NOT_A_SESSION_API, "POST", {"ids": ["a"]}
    ),
    "api/v2/entity": Access("/api/v2/entity", NOT_A_SESSION_API, "POST", {"type": "person"}),
    "api/v2/batch": Access("/api/v2/batch", NOT_A_SESSION_API, "POST", {"batch": []}),
    "v1/batch": Access("/v1/batch", NOT_A_SESSION_API, "POST", {"batch": []}),
    "^v1/(?P<kind>identify|track|page|screen|group|alias)$": Access(
        "/v1/identify", NOT_A_SESSION_API, "POST", {"userId": "a"}
    ),
    "track/browser": Access("/track/browser", NOT_A_SESSION_API, "POST", {"key": "pk_nope"}),
    "api/v1/metrics": Access(
        "/api/v1/metrics", NOT_A_SESSION_API, "POST", {"delivery_id": "1", "metric": "opened"}
    ),
    # A recipient's links: the signed token is the authority, whoever follows it.
    "email/unsubscribe/<str:token>/": Access("/email/unsubscribe/{unsubscribe_link}/", EVERYONE),
    "email/preferences/<str:token>/": Access("/email/preferences/{preferences_link}/", EVERYONE),
    "email/open/<str:token>/o.gif": Access("/email/open/{open_link}/o.gif", EVERYONE),
    "email/click/<str:token>/": Access("/email/click/{click_link}/", EVERYONE),
    # Provider webhooks: 404 until their secrets are configured, then the signature decides.
    "email/webhooks/mailgun/": Access("/email/webhooks/mailgun/", NOBODY, "POST"),
    # Django's admin (more below, generated for every registered model).
    "admin/": Access("/admin/", STAFF_ONLY),
    "admin/login/": Access("/admin/login/", EVERYONE),
    "admin/logout/": Access("/admin/logout/", EVERYONE, "POST"),
    "admin/password_change/": Access("/admin/password_change/", STAFF_ONLY),
    "admin/password_change/done/": Access("/admin/password_change/done/", STAFF_ONLY),
    # Staff get 403 without the widget's parameters, everyone else the admin login.
    "admin/autocomplete/": Access("/admin/autocomplete/", NOBODY),
    "admin/jsi18n/": Access("/admin/jsi18n/", STAFF_ONLY),
    # No registered model has a page on the site: 404 for staff too.
    "admin/r/<path:content_type_id>/<path:object_id>/": Access("/admin/r/1/1/", NOBODY),
    "admin/^(?P<app_label>auth|accounts)/$": Access("/admin/accounts/", STAFF_ONLY),
    "admin/(?P<url>.*)$": Access("/admin/no-such-page/", NOBODY),
}

# --- The status host: status.<BASE_DOMAIN> (config/urls_status.py) --------------------------

STATUS_URLS: dict[str, Access] = {
    "subscribe/": Access("/subscribe/", EVERYONE),
    "subscribe/sent/": Access("/subscribe/sent/", EVERYONE),
    "subscribe/confirm/<str:token>/": Access("/subscribe/confirm/{confirm_token}/", EVERYONE),
    "unsubscribe/<str:token>/": Access("/unsubscribe/{unsubscribe_token}/", EVERYONE),
    # What the snapshot does not hold: 404 for everyone.
    "^(?P<path>.*)$": Access("/no-such-page/", NOBODY),
}


def admin_model_urls(registry: dict) -> dict[str, Access]:
    """Entries for every model registered with the admin: staff only, each object's pages
    asked for a real row (placeholder `admin:<app>.<model>`)."""
    urls = {}
    for model in registry:
        prefix = f"admin/{model._meta.app_label}/{model._meta.model_name}/"
        row = f"/{prefix}{{admin:{model._meta.label_lower}}}/"
        urls[prefix] = Access(f"/{prefix}", STAFF_ONLY)
        urls[f"{prefix}add/"] = Access(f"/{prefix}add/", STAFF_ONLY)
        urls[f"{prefix}<path:object_id>/history/"] = Access(f"{row}history/", STAFF_ONLY)
        urls[f"{prefix}<path:object_id>/delete/"] = Access(f"{row}delete/", STAFF_ONLY)
        urls[f"{prefix}<path:object_id>/change/"] = Access(f"{row}change/", STAFF_ONLY)
        urls[f"{prefix}<path:object_id>/"] = Access(row, STAFF_ONLY)  # redirects to change/
        if model._meta.label_lower == "accounts.user":
            urls[f"{prefix}<id>/password/"] = Access(f"{row}password/", STAFF_ONLY)
    return urls
