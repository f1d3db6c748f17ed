"""Picks the side of Ferry a request belongs to from its host, before anything else runs.

- `<slug>.<BASE_DOMAIN>` (a Domain row): that account's dashboard, with only the account's
  schema on the search path. A tenant-looking host without a Domain row is a 404.
- `status.<BASE_DOMAIN>`: the public status page; it never needs the database.
- any other allowed host: the public side (staff console, admin, ingestion API).

Ingestion API paths are the public side on every host but the status host, and never wait
for a Domain lookup: they must keep accepting data while PostgreSQL is down.
"""

from collections.abc import Callable

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.http.request import split_domain_port
from django.shortcuts import render

from accounts.models import Account

ACCOUNT_SIDE = "account"
PUBLIC_SIDE = "public"
STATUS_SIDE = "status"
# /email/: recipients' unsubscribe, open and click links and provider webhooks (messaging).
INGEST_PATH_PREFIXES = ("/api/", "/v1/", "/track/", "/email/")


def request_host(request: HttpRequest) -> str:
    domain, _port = split_domain_port(request.get_host())
    return domain


class AccountRoutingMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.status_host = f"{settings.STATUS_SUBDOMAIN}.{settings.BASE_DOMAIN}"
        self.tenant_suffix = f".{settings.BASE_DOMAIN}"

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # A connection kept from an earlier request may still point at another account: every
        # branch below sets the schema it needs before anything reads through the connection.
        request.account = None
        host = request_host(request)

        if host == self.status_host:
            connection.set_schema_to_public()
            request.side = STATUS_SIDE
            request.urlconf = settings.STATUS_URLCONF
            return self.get_response(request)

        if request.path_info.startswith(INGEST_PATH_PREFIXES):
            connection.set_schema_to_public()
            request.side = PUBLIC_SIDE
            request.urlconf = settings.PUBLIC_SCHEMA_URLCONF
            return self.get_response(request)

        account = Account.objects.for_host(host) if self.may_be_account(host) else None
        if account is None:
            connection.set_schema_to_public()
        if account is None and host.endswith(self.tenant_suffix):
            request.side = ACCOUNT_SIDE
            return render(request, "accounts/unknown_account.html", {"host": host}, status=404)

        if account is None:
            request.side = PUBLIC_SIDE
            request.urlconf = settings.PUBLIC_SCHEMA_URLCONF
            return self.get_response(request)

        request.side = ACCOUNT_SIDE
        unavailable = self.unavailable(request, account)
        if unavailable is not None:
            return unavailable
        account.activate()
        request.account = request.tenant = account
        request.urlconf = settings.ROOT_URLCONF
        return self.get_response(request)

    def unavailable(self, request: HttpRequest, account: Account) -> HttpResponse | None:
        """A page instead of the dashboard while the account is not (fully) usable."""
        State = Account.State
        if account.state == State.ACTIVE:
            return None
        if account.state == State.MOVING and request.method in ("GET", "HEAD", "OPTIONS"):
            return None  # reads work during a move; only writes wait for it
        status = 410 if account.state == State.DELETING else 503
        response = render(request, "accounts/unavailable.html", {"shown": account}, status=status)
        if status == 503:
            response["Retry-After"] = "30"
        return response

    def may_be_account(self, host: str) -> bool:
        # The base domain and loopback addresses are always the public side; any other
        # host may be an account's subdomain or custom domain.
        return host not in {settings.BASE_DOMAIN, "127.0.0.1", "[::1]", "localhost"}
