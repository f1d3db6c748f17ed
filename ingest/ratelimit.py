"""Rate limits on the ingestion API, per credential, shared by every process of a node.

A token bucket per credential (`INGEST_RATE_LIMIT_PER_SECOND` requests a second, bursts of
`INGEST_RATE_LIMIT_BURST`), kept in a small SQLite file beside the spool, so every gunicorn
worker of the node takes from the same bucket without Redis or any other service. One
statement takes a token (an UPSERT with RETURNING under SQLite's write lock), and the file is
not fsync'd: losing a bucket in a crash only forgives a few requests.

The limit is per node: N web nodes behind a load balancer allow N times as much. A request
over the limit gets `429` with `Retry-After` (whole seconds), which both client libraries
honour: customerio's urllib3 retry sleeps that long and tries again, segment-analytics-python
re-queues the batch and pauses until then. If the bucket file itself fails (full disk), the
request is let through: a limiter must never be the reason data is refused.
"""

import logging
import math
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

log = logging.getLogger(__name__)

clock = time.time  # wall-clock seconds: buckets are shared by processes (tests set it)

SCHEMA = """
CREATE TABLE IF NOT EXISTS buckets (
    credential TEXT PRIMARY KEY,
    tokens REAL NOT NULL,
    updated REAL NOT NULL,
    allowed INTEGER NOT NULL
)
"""
# Refill, then take one token if there is one; `allowed` says whether this request got it.
TAKE = """
INSERT INTO buckets (credential, tokens, updated, allowed) VALUES (:key, :burst - 1, :now, 1)
ON CONFLICT (credential) DO UPDATE SET
    tokens = min(:burst, tokens + (:now - updated) * :rate)
        - (min(:burst, tokens + (:now - updated) * :rate) >= 1),
    allowed = (min(:burst, tokens + (:now - updated) * :rate) >= 1),
    updated = :now
RETURNING tokens, allowed
"""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    retry_after: int  # seconds until a token is back, when refused


class RateLimiter:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()

    @property
    def db(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None or getattr(self._local, "pid", None) != os.getpid():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=5, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=OFF")
            conn.execute(SCHEMA)
            self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def take(self, credential: str, rate: float, burst: int) -> Decision:
        now = clock()
        params = {"key": credential, "burst": burst, "now": now, "rate": rate}
        tokens, allowed = self.db.execute(TAKE, params).fetchone()
        retry_after = 0 if allowed else max(1, math.ceil((1 - tokens) / rate))
        return Decision(bool(allowed), burst, max(0, int(tokens)), retry_after)


_limiters: dict[Path, RateLimiter] = {}


def limiter() -> RateLimiter:
    path = Path(settings.INGEST_SPOOL_PATH).parent / "ratelimit.sqlite3"
    if path not in _limiters:
        _limiters[path] = RateLimiter(path)
    return _limiters[path]


def check(credential: str) -> Decision | None:
    """The decision for one request sent with `credential`, or None when there is no limit."""
    rate = settings.INGEST_RATE_LIMIT_PER_SECOND
    if rate <= 0:
        return None
    try:
        return limiter().take(credential, rate, max(1, settings.INGEST_RATE_LIMIT_BURST))
    except sqlite3.Error:
        log.exception("rate limiter unavailable; letting the request through")
        return None
