"""Every URL pattern of every side, asked by every role of the cast.

Only the roles the table in access_table.py allows succeed; every other one gets 401, 403,
404 or a login page, and sees none of acme's rows. A pattern missing from the table fails
`test_every_url_pattern_has_an_entry` with the line to add.
"""

import json
from collections.abc import Iterator

import pytest
from django.contrib import admin
from django.db import connection, transaction
from django.http import HttpResponse
from django.urls import URLPattern, URLResolver, get_resolver

from tests.isolation.access_table import (
    PUBLIC_URLS,
    ROLES,
    STAFF,
    STATUS_URLS,
    TEAM,
    TENANT_URLS,
    Access,
    admin_model_urls,
)
from tests.isolation.conftest import MARKERS

pytestmark = pytest.mark.django_db

URLCONFS = {
    "tenant": ("config.urls_tenant", "TENANT_URLS"),
    "public": ("config.urls_public", "PUBLIC_URLS"),
    "status": ("config.urls_status", "STATUS_URLS"),
}
# Roles that may read acme's rows somewhere: everyone else must never see its markers.
TRUSTED_WITH_ACME = {*TEAM, STAFF}
LOGIN_PATHS = ("/login/", "/staff/login/", "/admin/login/")


def table(side: str) -> dict[str, Access]:
    if side == "tenant":
        return TENANT_URLS
    if side == "status":
        return STATUS_URLS
    return {**PUBLIC_URLS, **admin_model_urls(admin.site._registry)}


def url_patterns(urlconf: str) -> Iterator[tuple[str, str]]:
    """(route as written, the view's dotted name) for every pattern, includes walked."""

    def walk(patterns, prefix: str) -> Iterator[tuple[str, str]]:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                callback = pattern.callback
                view = f"{callback.__module__}.{getattr(callback, '__name__', '?')}"
                yield prefix + str(pattern.pattern), view

    yield from walk(get_resolver(urlconf).url_patterns, "")


def suggestion(side: str, route: str, view: str) -> str:
    path = "/" + route.replace("<int:", "{").replace("<str:", "{").replace(">", "}")
    return f"    {route!r}: Access({path!r}, own(TEAM)),  # {view}, in {URLCONFS[side][1]}"


@pytest.mark.parametrize("side", URLCONFS)
def test_every_url_pattern_has_an_entry(side):
    urlconf, _ = URLCONFS[side]
    entries = table(side)
    routes = dict(url_patterns(urlconf))
    missing = [
        suggestion(side, route, view) for route, view in routes.items() if route not in entries
    ]
    assert not missing, (
        "URL patterns without an isolation entry. Add them to tests/isolation/access_table.py "
        "with the roles that may use them (TEAM, EDITORS, MANAGERS, STAFF_ONLY, EVERYONE, "
        "NOBODY; own(...) for account pages without ids), the method and a concrete path:\n"
        + "\n".join(missing)
    )
    stale = sorted(set(entries) - set(routes))
    assert not stale, f"Entries for URL patterns that no longer exist (remove them): {stale}"


def cases() -> list:
    return [
        pytest.param(side, route, id=f"{side}:/{route}")
        for side in URLCONFS
        for route in table(side)
    ]


def fill(value, rows: dict[str, str]):
    if isinstance(value, list):
        return [fill(item, rows) for item in value]
    for name, row in rows.items():
        value = value.replace("{" + name + "}", row)
    assert "{" not in value, f"no row for a placeholder in {value!r} (add it to conftest.py)"
    return value


def body(response: HttpResponse) -> str:
    if response.streaming:
        return b"".join(response.streaming_content).decode(errors="replace")
    return response.content.decode(errors="replace")


def ask(client, access: Access, rows: dict[str, str]) -> HttpResponse:
    path = fill(access.path, rows)
    data = {key: fill(value, rows) for key, value in access.data.items()}
    if path.startswith(("/api/", "/v1/", "/track/")):
        return client.generic(access.method, path, json.dumps(data), "application/json")
    if access.method == "GET":
        return client.get(path, data)
    return client.post(path, data)


def is_login_redirect(response: HttpResponse) -> bool:
    location = response.get("Location", "")
    return response.status_code == 302 and location.startswith(LOGIN_PATHS)


def problem(role: str, access: Access, response: HttpResponse) -> str | None:
    """What is wrong with this role's answer, or None."""
    shown = body(response)
    where = f"{response.status_code} {response.get('Location', '')}".strip()
    if role in access.allowed:
        if response.status_code >= 400:
            return f"{role} was refused ({where}) but the table allows it: {shown[:200]!r}"
        if is_login_redirect(response) and not access.login_redirect_ok:
            return f"{role} was sent to log in ({where}) but the table allows it"
    elif not (response.status_code in (401, 403, 404) or is_login_redirect(response)):
        return f"{role} got through ({where}) but the table does not allow it: {shown[:200]!r}"
    if role not in TRUSTED_WITH_ACME:
        leaked = [marker for marker in MARKERS if marker in shown]
        if leaked:
            return f"{role} saw acme's {leaked}"
    return None


@pytest.mark.parametrize(("side", "route"), cases())
def test_only_the_intended_roles_get_through(side, route, request, client_as):
    rows = request.getfixturevalue("public_rows" if side != "tenant" else "acme_rows")
    if side == "status":
        request.getfixturevalue("published")
    access = table(side)[route]
    problems = []
    for role in ROLES:
        # Each role meets the rows as they were: what an allowed role changed is undone.
        with transaction.atomic():
            response = ask(client_as(role, side), access, rows)
            problems.append(problem(role, access, response))
            connection.set_schema_to_public()
            transaction.set_rollback(True)
    assert not any(problems), "\n".join(p for p in problems if p)
