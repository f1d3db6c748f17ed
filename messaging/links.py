"""Signed, expiring links in messages, and Message-IDs that name their account.

Every link a message carries (unsubscribe, preferences, open pixel, click redirect) is a
`django.core.signing` token with its own salt and a maximum age, holding the account id and
the delivery id: the public views read them without a database lookup, which is what lets
unsubscribes, opens and clicks be spooled while PostgreSQL is down.

A Message-ID is `<{delivery id}.{account id}.{random}@{domain}>`: a provider's webhook that
echoes it back can be routed to its account and delivery without a lookup either.
"""

import re
import secrets
from dataclasses import dataclass

from django.conf import settings
from django.core import signing

UNSUBSCRIBE_SALT = "ferry.messaging.unsubscribe"
PREFERENCES_SALT = "ferry.messaging.preferences"
OPEN_SALT = "ferry.messaging.open"
CLICK_SALT = "ferry.messaging.click"

MESSAGE_ID = re.compile(r"^<?(\d{1,19})\.(\d{1,19})\.([0-9a-f]{8,32})@([^>@\s]+)>?$")


@dataclass(frozen=True)
class LinkTarget:
    account: str  # the account id, as the spool names accounts
    delivery: int
    url: str = ""


def sign(salt: str, account: str, delivery: int, url: str = "") -> str:
    data: dict = {"a": account, "d": delivery}
    if url:
        data["u"] = url
    return signing.dumps(data, salt=salt)


def read(salt: str, token: str, max_age: int) -> LinkTarget | None:
    """The target a token names, or None if it is forged, malformed or expired."""
    try:
        data = signing.loads(token, salt=salt, max_age=max_age)
    except signing.BadSignature:
        return None
    if not isinstance(data, dict):
        return None
    account, delivery, url = data.get("a"), data.get("d"), data.get("u", "")
    if not isinstance(account, str) or not isinstance(delivery, int) or not isinstance(url, str):
        return None
    return LinkTarget(account, delivery, url)


def public_url(path: str) -> str:
    return f"{settings.MESSAGING_LINK_BASE_URL.rstrip('/')}{path}"


def new_message_id(delivery: int, account: str) -> str:
    return f"<{delivery}.{account}.{secrets.token_hex(8)}@{settings.MESSAGING_MESSAGE_ID_DOMAIN}>"


def parse_message_id(message_id: str) -> tuple[str, int] | None:
    """(account id, delivery id) from a Message-ID Ferry made, else None."""
    match = MESSAGE_ID.match((message_id or "").strip())
    if match is None or match.group(4) != settings.MESSAGING_MESSAGE_ID_DOMAIN:
        return None
    return match.group(2), int(match.group(1))
