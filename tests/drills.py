"""What every drill stands on: a private PostgreSQL cluster, Ferry's own processes on it, and
the count of acknowledged events found afterwards.

Used by the fault drills (tests/outage/), the maintenance drill (tests/maintenance/drill.py)
and the benchmarks built on them (bench/ingest_outage.py, bench/drill_2015.py,
bench/accounts_*.py). The processes are the ones a deployment runs: gunicorn, drain workers
and `manage.py` commands, each a process of its own with the drill's database and spool.
"""

import http.client
import json
import logging
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

BASE_DIR = Path(__file__).resolve().parent.parent


class Cluster:
    """A throwaway PostgreSQL cluster that can be stopped and started again."""

    def __init__(self, folder: Path) -> None:
        logging.getLogger("pgserver").setLevel(logging.WARNING)
        import pgserver

        self.pgdata = folder / "pgdata"
        self.pgdata.mkdir()
        self.server = pgserver.get_server(self.pgdata, cleanup_mode="delete")
        self.url = self.server.get_uri("postgres")

    def create_database(self, name: str) -> str:
        """An empty database on the cluster; returns its URL."""
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url.replace("/postgres?", f"/{name}?")

    def stop(self) -> None:
        from pgserver._commands import pg_ctl

        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=self.server.system_user)

    def start(self) -> None:
        self.server.ensure_postgres_running()

    def close(self) -> None:
        self.server.cleanup()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Ferry:
    """gunicorn, drain workers and manage.py commands on a drill's database, with a spool and
    a var folder of their own."""

    def __init__(self, folder: Path, database_url: str, env: dict[str, str] | None = None) -> None:
        self.spool_path = folder / "spool.sqlite3"
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "INGEST_SPOOL_PATH": str(self.spool_path),
            "FERRY_VAR_DIR": str(folder / "var"),
            "LOG_LEVEL": "WARNING",
            **(env or {}),
        }
        self.port = free_port()
        self.web: subprocess.Popen | None = None
        self.drains: list[subprocess.Popen] = []

    def manage(self, *args: str, timeout: float = 600) -> str:
        return subprocess.run(
            [sys.executable, "manage.py", *args], cwd=BASE_DIR, env=self.env,
            capture_output=True, text=True, check=True, timeout=timeout,
        ).stdout  # fmt: skip

    def popen(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "manage.py", *args], cwd=BASE_DIR, env=self.env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

    def start(self, drains: int = 2) -> None:
        """gunicorn and `drains` drain workers, as the run command starts them."""
        self.start_web()
        self.start_drains(drains)

    def start_web(self, workers: int = 2, preload: bool = False) -> None:
        command = [
            sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{self.port}",
            "--workers", str(workers), "--log-level", "warning",
        ]  # fmt: skip
        self.web = subprocess.Popen(
            command + (["--preload"] if preload else []), cwd=BASE_DIR, env=self.env
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.web.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.web.returncode}")
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                connection.request("GET", "/api/v1/events")  # 405: up, no database needed
                connection.getresponse().read()
                return
            except OSError:
                time.sleep(0.2)
        raise TimeoutError("gunicorn did not start")

    def start_drains(self, count: int = 2) -> None:
        for _ in range(count):
            self.start_drain()

    def start_drain(self) -> subprocess.Popen:
        drain = subprocess.Popen(
            [sys.executable, "manage.py", "drain"], cwd=BASE_DIR, env=self.env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.drains.append(drain)
        return drain

    def kill_drain(self) -> None:
        """SIGKILL for the drain worker started last."""
        drain = self.drains.pop()
        drain.send_signal(signal.SIGKILL)
        drain.wait()

    def backlog(self) -> int:
        if not self.spool_path.exists():
            return 0
        with sqlite3.connect(self.spool_path, timeout=30) as db:
            try:
                return db.execute("SELECT count(*) FROM items").fetchone()[0]
            except sqlite3.OperationalError as error:
                if "no such table" in str(error):  # the first process is creating it
                    return 0
                raise

    def leased(self) -> int:
        """Leases a drain worker holds and has not yet ended: it is mid-batch."""
        with sqlite3.connect(self.spool_path, timeout=30) as db:
            return db.execute(
                "SELECT count(*) FROM leases WHERE until > ?", (time.time(),)
            ).fetchone()[0]

    def account_ids(self) -> list[str]:
        with psycopg.connect(self.env["DATABASE_URL"]) as conn:
            return [str(row[0]) for row in conn.execute("SELECT id FROM accounts_account")]

    def pause(self, accounts: list[str]) -> None:
        with sqlite3.connect(self.spool_path, timeout=30) as db:
            db.execute("CREATE TABLE IF NOT EXISTS paused (account TEXT PRIMARY KEY)")
            db.executemany("INSERT OR IGNORE INTO paused VALUES (?)", [(a,) for a in accounts])

    def resume(self, accounts: list[str]) -> None:
        with sqlite3.connect(self.spool_path, timeout=30) as db:
            db.executemany("DELETE FROM paused WHERE account = ?", [(a,) for a in accounts])

    def stop(self) -> None:
        for process in (self.web, *self.drains):
            if process and process.poll() is None:
                process.terminate()
                process.wait(timeout=30)


@dataclass
class EventTally:
    """Acknowledged events against what the account schemas hold afterwards."""

    events_acknowledged: int = 0
    events_present: int = 0
    events_missing: int = 0
    events_unexpected: int = 0
    refusals: list[str] = field(default_factory=list)

    def count(self, acknowledged: set[str], present: list[str]) -> None:
        """Add one account's acknowledged event ids and the dedupe keys found in its schema."""
        found = acknowledged & set(present)
        self.events_acknowledged += len(acknowledged)
        self.events_present += len(found)
        self.events_missing += len(acknowledged - found)
        self.events_unexpected += len(present) - len(found)


def stored_event_keys(database_url: str, schema: str, name: str | None = None) -> list[str]:
    """The dedupe keys of the events in `schema` (of the name `name`, if given)."""
    with psycopg.connect(database_url) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        where, params = ("WHERE name = %s", [name]) if name else ("", [])
        return [
            row[0] for row in conn.execute(f"SELECT dedupe_key FROM segments_event {where}", params)
        ]


def owner_session_key(account) -> str:
    """The key of a signed-in session for the account's only user (Django must be set up)."""
    from django.contrib.sessions.backends.db import SessionStore

    from accounts.models import User

    with account:
        owner = User.objects.get()
        session = SessionStore()
        session["_auth_user_id"] = str(owner.pk)
        session["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
        session["_auth_user_hash"] = owner.get_session_auth_hash()
        session.create()
    return session.session_key


ACCOUNTS_SCRIPT = """
import json
from accounts import actions
from accounts.models import ApiKey
from tests.drills import owner_session_key

out = []
for slug in %(slugs)r:
    account = actions.create_account(slug=slug, name=slug, owner_email=f"o@{slug}.example",
                                     owner_password="a-long-drill-password")
    key, issued = ApiKey.issue(account, "Drill")
    out.append({"slug": slug, "schema": account.schema_name, "site_id": issued.site_id,
                "api_key": issued.api_key, "session": owner_session_key(account)})
print(json.dumps(out))
"""


@dataclass(frozen=True)
class DrillAccount:
    slug: str
    schema: str
    site_id: str
    api_key: str
    session: str  # the owner's session key, signed in

    @property
    def host(self) -> str:
        return f"{self.slug}.localhost"


def create_accounts(ferry: Ferry, slugs: list[str]) -> list[DrillAccount]:
    """Accounts with an API key and a signed-in owner each, in one manage.py process."""
    output = ferry.manage("shell", "-c", ACCOUNTS_SCRIPT % {"slugs": slugs})
    created = json.loads(output.strip().splitlines()[-1])  # after any migration chatter
    return [DrillAccount(**account) for account in created]
