"""The durable local spool: what the API has accepted and the drain has not yet applied.

SQLite in WAL mode on the web node's own disk, independent of PostgreSQL. A request is
acknowledged only after its items are committed here with `synchronous=FULL`, i.e. fsync'd.
Drain workers lease items, apply them to PostgreSQL, and delete them only after that commit;
a worker killed mid-batch leaves a lease that expires, and the items are applied again, which
is harmless because applying is idempotent (event dedupe keys, attribute timestamps).

A lease is one row per account (the range of item ids a worker took), not a mark on every
item: claiming 50,000 items then writes one row instead of rewriting every page that holds
them. The drain's own writes (leases, releases, apply counts) commit without fsync: losing
them to a power cut only means applying some items again, which changes nothing.
"""

import fcntl
import json
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from django.conf import settings

SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account TEXT NOT NULL,
    payload TEXT NOT NULL,
    received_at REAL NOT NULL,
    lease_until REAL NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0
);
DROP INDEX IF EXISTS items_by_lease;
CREATE INDEX IF NOT EXISTS items_by_account ON items (account, id);
CREATE TABLE IF NOT EXISTS leases (
    account TEXT PRIMARY KEY,
    first_id INTEGER NOT NULL,
    last_id INTEGER NOT NULL,
    until REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS applied (
    account TEXT NOT NULL,
    minute INTEGER NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (account, minute)
);
CREATE TABLE IF NOT EXISTS credentials (
    kind TEXT NOT NULL,
    lookup TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    account TEXT NOT NULL,
    cached_at REAL NOT NULL,
    PRIMARY KEY (kind, lookup)
);
CREATE TABLE IF NOT EXISTS paused (account TEXT PRIMARY KEY);
"""

RATE_WINDOW_MINUTES = 5
# The API's commits checkpoint the WAL once in this many (the drain's, every time).
CHECKPOINT_EVERY = 200


class SpooledItem(NamedTuple):
    """A tuple, not a dataclass: a claim makes 50,000 of them, and a frozen dataclass took
    about a fifth of the claim's time to build them (holding Python's lock, which the drain's
    other threads need)."""

    id: int
    account: str
    payload: str


@dataclass(frozen=True)
class Backlog:
    account: str
    waiting: int
    oldest_received_at: float
    applied_per_second: float

    @property
    def oldest_age_seconds(self) -> float:
        return max(0.0, time.time() - self.oldest_received_at)

    @property
    def eta_seconds(self) -> float | None:
        if self.applied_per_second <= 0:
            return None
        return self.waiting / self.applied_per_second


class Spool:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()

    @property
    def db(self) -> sqlite3.Connection:
        # One connection per process and thread: never share one across a fork.
        conn = getattr(self._local, "conn", None)
        if conn is None or getattr(self._local, "pid", None) != os.getpid():
            conn = self._connect()
            self._local.conn, self._local.pid, self._local.durable = conn, os.getpid(), True
            self._local.lock = None
        return conn

    def _writer_lock(self) -> int:
        """This thread's descriptor of the writers' lock file (flock: one per open file, so
        threads of one process queue on it like processes do). Call after `db`, which forgets
        the descriptor along with the connection after a fork."""
        if self._local.lock is None:
            self._local.lock = self._open_lock_file()
        return self._local.lock

    def _open_lock_file(self) -> int:
        return os.open(
            self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
            0o600,
        )  # fmt: skip

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        # Setting up takes SQLite's write lock, so it queues on the writers' lock like every
        # writer (see _Transaction): polling for SQLite's lock instead, a new connection could
        # wait its whole busy timeout while the writers hand the lock on to each other, and
        # fail with "database is locked" (a web worker's first request, under load).
        lock = self._open_lock_file()
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA busy_timeout=30000")
            # Checkpoints run after the writer lock is released (see _Transaction), not inside
            # whichever commit crosses SQLite's threshold while every other writer waits.
            conn.execute("PRAGMA wal_autocheckpoint=0")
            conn.executescript(SCHEMA)
        finally:
            os.close(lock)  # and with it the flock
        return conn

    def append(self, account: str, payloads: list[str]) -> None:
        """Store accepted items durably; returns only once they are on disk."""
        now = time.time()
        with self._transaction() as db:
            db.executemany(
                "INSERT INTO items (account, payload, received_at) VALUES (?, ?, ?)",
                [(account, payload, now) for payload in payloads],
            )

    def claim(
        self, limit: int, lease_seconds: float, after: SpooledItem | None = None
    ) -> list[SpooledItem]:
        """Lease up to `limit` of the oldest items of one account no other worker is on.

        One account per batch keeps workers out of each other's way: each applies whole
        batches for its own account while another works on a different one. The lease lasts
        until `end_lease` (or `retry_later`), or until it expires because its worker died.

        `after` is the last item of the batch this worker is still applying (reading ahead):
        then only that account's items past it are taken, and only while the account's next
        item is the oldest any worker could take (else the worker moves on after this batch,
        as it would have), and the lease is extended over both batches.
        """
        now = time.time()
        mine, last = (after.account, after.id) if after else (None, 0)
        with self._transaction(durable=False) as db:
            row = db.execute(
                """
                SELECT account FROM items
                WHERE account NOT IN (SELECT account FROM paused)
                  AND (account NOT IN (SELECT account FROM leases WHERE until >= ?)
                       OR (account = ? AND id > ?))
                ORDER BY id LIMIT 1
                """,
                (now, mine, last),
            ).fetchone()
            if row is None or (after is not None and row[0] != mine):
                return []
            rows = db.execute(
                "SELECT id, account, payload FROM items WHERE account = ? AND id > ?"
                " ORDER BY id LIMIT ?",
                (row[0], last, limit),
            ).fetchall()
            first_id = rows[0][0]
            if after is not None:
                # The lease covers the batch still being applied too, until both are done.
                lease = db.execute(
                    "SELECT first_id FROM leases WHERE account = ?", (mine,)
                ).fetchone()
                first_id = min(first_id, lease[0]) if lease else first_id
            db.execute(
                "INSERT OR REPLACE INTO leases (account, first_id, last_id, until)"
                " VALUES (?, ?, ?, ?)",
                (row[0], first_id, rows[-1][0], now + lease_seconds),
            )
        return list(map(SpooledItem._make, rows))

    def release(self, ids: list[int]) -> None:
        """Forget items that are committed in PostgreSQL (or moved to the dead letters)."""
        with self._transaction(durable=False) as db:
            for start in range(0, len(ids), 50_000):
                db.execute(
                    "DELETE FROM items WHERE id IN (SELECT value FROM json_each(?))",
                    (json.dumps(ids[start : start + 50_000]),),
                )

    def end_lease(self, account: str, last_id: int | None = None) -> None:
        """The worker is done with the account's batch: others may claim the account.

        With `last_id` (the batch's last item), a lease that a read-ahead claim has extended
        past it stays: the worker still holds the next batch.
        """
        with self._transaction(durable=False) as db:
            if last_id is None:
                db.execute("DELETE FROM leases WHERE account = ?", (account,))
            else:
                db.execute(
                    "DELETE FROM leases WHERE account = ? AND last_id <= ?", (account, last_id)
                )

    def retry_later(self, account: str, delay_seconds: float) -> None:
        """Keep the account's leased items back for a while, then let any worker take them."""
        with self._transaction(durable=False) as db:
            db.execute(
                "UPDATE leases SET until = ? WHERE account = ?",
                (time.time() + delay_seconds, account),
            )

    def leased_accounts(self) -> list[str]:
        """Accounts a worker is applying a batch for right now."""
        rows = self.db.execute("SELECT account FROM leases WHERE until >= ?", (time.time(),))
        return [row[0] for row in rows.fetchall()]

    def record_applied(self, counts: dict[str, int]) -> None:
        minute = int(time.time() // 60)
        with self._transaction(durable=False) as db:
            db.executemany(
                """
                INSERT INTO applied (account, minute, count) VALUES (?, ?, ?)
                ON CONFLICT (account, minute) DO UPDATE SET count = count + excluded.count
                """,
                [(account, minute, count) for account, count in counts.items()],
            )
            db.execute("DELETE FROM applied WHERE minute < ?", (minute - 60,))

    def backlog(self, account: str | None = None) -> list[Backlog]:
        """Items waiting per account, the oldest one's age, and the recent apply rate."""
        where, params = ("WHERE account = ?", (account,)) if account else ("", ())
        waiting = self.db.execute(
            f"SELECT account, count(*), min(received_at) FROM items {where} GROUP BY account",
            params,
        ).fetchall()
        since = int(time.time() // 60) - RATE_WINDOW_MINUTES
        rates = dict(
            self.db.execute(
                "SELECT account, sum(count) FROM applied WHERE minute >= ? GROUP BY account",
                (since,),
            ).fetchall()
        )
        window = RATE_WINDOW_MINUTES * 60
        return [
            Backlog(name, count, oldest, rates.get(name, 0) / window)
            for name, count, oldest in waiting
        ]

    def pending_count(self) -> int:
        return self.db.execute("SELECT count(*) FROM items").fetchone()[0]

    def pause(self, account: str) -> None:
        with self._transaction() as db:
            db.execute("INSERT OR IGNORE INTO paused (account) VALUES (?)", (account,))

    def resume(self, account: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM paused WHERE account = ?", (account,))

    # The credential cache lets the API check keys while PostgreSQL is down.

    def cache_credential(self, kind: str, lookup: str, secret_hash: str, account: str) -> None:
        with self._transaction() as db:
            db.execute(
                """
                INSERT INTO credentials (kind, lookup, secret_hash, account, cached_at)
                VALUES (?, ?, ?, ?, ?)
                ON CONFLICT (kind, lookup) DO UPDATE SET secret_hash = excluded.secret_hash,
                    account = excluded.account, cached_at = excluded.cached_at
                """,
                (kind, lookup, secret_hash, account, time.time()),
            )

    def forget_credential(self, kind: str, lookup: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM credentials WHERE kind = ? AND lookup = ?", (kind, lookup))

    def cached_credential(self, kind: str, lookup: str) -> tuple[str, str] | None:
        row = self.db.execute(
            "SELECT secret_hash, account FROM credentials WHERE kind = ? AND lookup = ?",
            (kind, lookup),
        ).fetchone()
        return (row[0], row[1]) if row else None

    def _transaction(self, durable: bool = True) -> "_Transaction":
        """durable=False: commit without fsync, for writes that are safe to lose (see top)."""
        db = self.db
        if getattr(self._local, "durable", True) != durable:
            db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            self._local.durable = durable
        try:
            lock = self._writer_lock()
        except OSError as error:  # e.g. a full disk: refuse like SQLite would
            raise sqlite3.OperationalError(f"spool lock file: {error}") from error
        return _Transaction(db, lock, checkpoint=not durable or self._every_so_often())

    def _every_so_often(self) -> bool:
        """True on every CHECKPOINT_EVERY-th durable commit of this thread: the drain's
        commits checkpoint the WAL, and the API's only now and then, in case no drain runs."""
        self._local.commits = getattr(self._local, "commits", 0) + 1
        return self._local.commits % CHECKPOINT_EVERY == 0


class _Transaction:
    """flock, BEGIN IMMEDIATE … COMMIT, unlock: writers queue in the kernel, not in SQLite.

    SQLite's own wait for its write lock (busy_timeout) sleeps in steps of up to 100 ms and
    wakes no one when the lock is freed, so with several web workers and drain workers writing
    at once the lock sat idle while they slept: three processes appending 100 items at a time
    managed 127 commits a second on a busy machine. A blocking flock on a lock file beside the
    spool hands the lock to the next writer the moment it is released. Its holder never waits
    on SQLite (every writer goes through here); the kernel frees it if the holder dies, and a
    web worker that hangs is killed by gunicorn's timeout. Readers take no lock (WAL).
    """

    def __init__(self, db: sqlite3.Connection, lock: int, checkpoint: bool) -> None:
        self.db, self.lock, self.checkpoint = db, lock, checkpoint

    def __enter__(self) -> sqlite3.Connection:
        fcntl.flock(self.lock, fcntl.LOCK_EX)
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except BaseException:
            fcntl.flock(self.lock, fcntl.LOCK_UN)
            raise
        return self.db

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.db.execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            fcntl.flock(self.lock, fcntl.LOCK_UN)
        if self.checkpoint and exc_type is None:
            # PASSIVE: copies what it can beside the writers, waits for nobody; cheap when
            # the WAL holds nothing new.
            self.db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()


_spools: dict[Path, Spool] = {}


def get_spool() -> Spool:
    path = Path(settings.INGEST_SPOOL_PATH)
    if path not in _spools:
        _spools[path] = Spool(path)
    return _spools[path]
