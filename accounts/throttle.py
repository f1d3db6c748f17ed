"""Login throttling: per login identity (an email on one account's host) and per address.

Failures are rows in the control plane, so every web node and worker counts the same ones.
Over `LOGIN_FAILURES_PER_IDENTITY` failures for an email (or `LOGIN_FAILURES_PER_ADDRESS`
from one address, across all accounts) within `LOGIN_THROTTLE_WINDOW_SECONDS`, logins are
refused without checking the password until the oldest failure leaves the window; the form
says so and for how long, and the answer is a 429. Crossing the limit is written to the
account's audit log (`login.throttled`) and to the log. A successful login clears the
identity's failures (not the address's: one right password must not reset a spray).

The address is REMOTE_ADDR, or behind a TLS proxy (`BEHIND_TLS_PROXY`) the last entry of
X-Forwarded-For, the one the proxy itself appended (earlier entries come from the client).
"""

import logging
import math
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.http import HttpRequest
from django.utils import timezone

from accounts.models import AuditEntry, LoginFailure, control_plane

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Refusal:
    message: str
    retry_after: int


def client_address(request: HttpRequest) -> str:
    if getattr(settings, "SECURE_PROXY_SSL_HEADER", None):
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded.strip():
            return forwarded.split(",")[-1].strip()[:100]
    return request.META.get("REMOTE_ADDR", "")[:100] or "unknown"


def keys_for(request: HttpRequest, email: str) -> tuple[str, str]:
    return f"identity:{connection.schema_name}:{email.strip().lower()}", (
        f"address:{client_address(request)}"
    )


def _retry_after(key: str, limit: int) -> int | None:
    """Seconds until `key` is under its limit again, or None if it is under it now."""
    since = timezone.now() - timedelta(seconds=settings.LOGIN_THROTTLE_WINDOW_SECONDS)
    times = list(
        LoginFailure.objects.filter(key=key, created_at__gte=since)
        .order_by("-created_at")
        .values_list("created_at", flat=True)[:limit]
    )
    if len(times) < limit:
        return None
    free_at = times[-1] + timedelta(seconds=settings.LOGIN_THROTTLE_WINDOW_SECONDS)
    return max(1, math.ceil((free_at - timezone.now()).total_seconds()))


def refusal(request: HttpRequest, email: str) -> Refusal | None:
    identity, address = keys_for(request, email)
    with control_plane():
        by_identity = _retry_after(identity, settings.LOGIN_FAILURES_PER_IDENTITY)
        by_address = _retry_after(address, settings.LOGIN_FAILURES_PER_ADDRESS)
    if by_identity is None and by_address is None:
        return None
    wait = max(by_identity or 0, by_address or 0)
    minutes = max(1, math.ceil(wait / 60))
    what = "this email address" if by_identity else "your network address"
    log.warning(
        "login throttled",
        extra={"email": email, "address": client_address(request), "by": what,
               "schema": connection.schema_name},
    )  # fmt: skip
    return Refusal(
        f"Too many failed logins for {what}. Try again in {minutes} minute"
        f"{'s' if minutes != 1 else ''}, or reset your password.",
        wait,
    )


def record_failure(request: HttpRequest, email: str) -> None:
    identity, address = keys_for(request, email)
    schema = connection.schema_name
    with control_plane():
        LoginFailure.objects.bulk_create([LoginFailure(key=identity), LoginFailure(key=address)])
        old = timezone.now() - timedelta(seconds=settings.LOGIN_THROTTLE_WINDOW_SECONDS)
        LoginFailure.objects.filter(key__in=[identity, address], created_at__lt=old).delete()
        now_refused = _retry_after(identity, settings.LOGIN_FAILURES_PER_IDENTITY) or _retry_after(
            address, settings.LOGIN_FAILURES_PER_ADDRESS
        )
    if now_refused and schema != "public":
        # The account's own audit log: its owners see that someone is guessing.
        AuditEntry.objects.create(
            actor=email[:254], action="login.throttled", target=email[:300],
            detail={"address": client_address(request), "seconds": now_refused},
        )  # fmt: skip


def clear_failures(request: HttpRequest, email: str) -> None:
    identity, _address = keys_for(request, email)
    with control_plane():
        LoginFailure.objects.filter(key=identity).delete()
