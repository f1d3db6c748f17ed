"""From an API credential to the account it sends data for, even while PostgreSQL is down.

Lookups go to the control plane's ApiKey table; each answer is remembered in process for a
short while and in the spool's credential cache on disk. While PostgreSQL is unreachable the
disk cache answers; a credential it has never seen is accepted provisionally and checked by
the drain, because refusing data during an outage is the failure Ferry exists to prevent.
"""

import hashlib
import time
from dataclasses import dataclass

from django.db import InterfaceError, OperationalError

from accounts.models import ApiKey
from ingest.spool import get_spool

MEMORY_TTL_SECONDS = 30
UNVERIFIED = "unverified"

TRACK, WRITE, TRACKER = "track", "write", "tracker"


@dataclass(frozen=True)
class Sender:
    """Who sent a request: an account id, or UNVERIFIED with the credential to check later."""

    account: str
    credential: dict | None = None

    @property
    def verified(self) -> bool:
        return self.account != UNVERIFIED


_memory: dict[tuple[str, str, str], tuple[str | None, float]] = {}


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def sender_for_track(site_id: str, api_key: str) -> Sender | None:
    return _resolve(
        TRACK, site_id, digest(api_key), lambda: ApiKey.objects.for_track(site_id, api_key)
    )


def sender_for_write_key(write_key: str) -> Sender | None:
    hashed = digest(write_key)
    return _resolve(WRITE, hashed, hashed, lambda: ApiKey.objects.for_write_key(write_key))


def sender_for_tracker(tracker_key: str) -> Sender | None:
    return _resolve(
        TRACKER, tracker_key, tracker_key, lambda: ApiKey.objects.for_tracker(tracker_key)
    )


def check_credential(credential: dict) -> str | None:
    """The account id of a provisionally accepted credential, or None if it is not valid."""
    kind, lookup, secret_hash = credential["kind"], credential["lookup"], credential["hash"]
    queryset = ApiKey.objects.active()
    if kind == TRACK:
        key = queryset.filter(site_id=lookup, api_key_hash=secret_hash).first()
    elif kind == WRITE:
        key = queryset.filter(write_key_hash=secret_hash).first()
    else:
        key = queryset.filter(tracker_key=lookup).first()
    return str(key.account_id) if key else None


def forget_cached_credentials() -> None:
    """Drop the in-process answers (after a revoke or rotate in this process, and in tests)."""
    _memory.clear()


def _resolve(kind: str, lookup: str, secret_hash: str, query) -> Sender | None:
    memory_key = (kind, lookup, secret_hash)
    remembered = _memory.get(memory_key)
    if remembered and remembered[1] > time.monotonic():
        return Sender(remembered[0]) if remembered[0] else None

    spool = get_spool()
    try:
        key = query()
    except (OperationalError, InterfaceError):
        cached = spool.cached_credential(kind, lookup)
        if cached and cached[0] == secret_hash:
            return Sender(cached[1])
        return Sender(UNVERIFIED, {"kind": kind, "lookup": lookup, "hash": secret_hash})

    account = str(key.account_id) if key else None
    _memory[memory_key] = (account, time.monotonic() + MEMORY_TTL_SECONDS)
    if account:
        spool.cache_credential(kind, lookup, secret_hash, account)
    else:
        spool.forget_credential(kind, lookup)
    return Sender(account) if account else None
