"""The 2015 drill, small enough for the test suite and large enough for a benchmark.

A private PostgreSQL cluster, Ferry under gunicorn with its drain worker, and a steady stream
of Track API batches. PostgreSQL is stopped for a while and started again (and, optionally,
the drain worker is killed with SIGKILL mid-batch and replaced); at the end every acknowledged
event must be in the account's schema exactly once.
"""

import http.client
import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from base64 import b64encode
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

BASE_DIR = Path(__file__).resolve().parent.parent.parent
EVENTS_PER_REQUEST = 10
PEOPLE = 200


class Cluster:
    """A throwaway PostgreSQL cluster that can be stopped and started again."""

    def __init__(self, folder: Path) -> None:
        logging.getLogger("pgserver").setLevel(logging.WARNING)
        import pgserver

        self.pgdata = folder / "pgdata"
        self.pgdata.mkdir()
        self.server = pgserver.get_server(self.pgdata, cleanup_mode="delete")
        self.url = self.server.get_uri("postgres")

    def stop(self) -> None:
        from pgserver._commands import pg_ctl

        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=self.server.system_user)

    def start(self) -> None:
        self.server.ensure_postgres_running()

    def close(self) -> None:
        self.server.cleanup()


@dataclass
class Report:
    requests_sent: int = 0
    requests_acknowledged: int = 0
    requests_refused: int = 0
    events_acknowledged: int = 0
    events_present: int = 0
    events_missing: int = 0
    events_unexpected: int = 0
    summary_total: int = 0
    peak_backlog: int = 0
    outage_seconds: float = 0.0
    drain_seconds_after_restart: float = 0.0
    drain_workers_killed: int = 0
    refusals: list[str] = field(default_factory=list)


class Ferry:
    """gunicorn and one drain worker against the drill's database, with a spool of their own."""

    def __init__(self, folder: Path, database_url: str) -> None:
        self.spool_path = folder / "spool.sqlite3"
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "INGEST_SPOOL_PATH": str(self.spool_path),
            "INGEST_LEASE_SECONDS": "5",
            "FERRY_VAR_DIR": str(folder / "var"),
            "LOG_LEVEL": "WARNING",
        }
        self.port = free_port()
        self.web = self.drain = self.steady_drain = None

    def manage(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=BASE_DIR, env=self.env,
            capture_output=True, text=True, check=True, timeout=300,
        )  # fmt: skip
        return result.stdout

    def start(self) -> None:
        self.web = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{self.port}",
             "--workers", "2", "--log-level", "warning"],
            cwd=BASE_DIR, env=self.env,
        )  # fmt: skip
        # Two drain workers, as the run command starts them: one of them gets killed.
        self.steady_drain = subprocess.Popen(
            [sys.executable, "manage.py", "drain"], cwd=BASE_DIR, env=self.env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.start_drain()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                connection.request("GET", "/api/v1/events")  # 405: up, no database needed
                connection.getresponse().read()
                return
            except OSError:
                time.sleep(0.2)
        raise TimeoutError("gunicorn did not start")

    def start_drain(self) -> None:
        self.drain = subprocess.Popen(
            [sys.executable, "manage.py", "drain"], cwd=BASE_DIR, env=self.env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def kill_drain(self) -> None:
        self.drain.send_signal(signal.SIGKILL)
        self.drain.wait()

    def backlog(self) -> int:
        if not self.spool_path.exists():
            return 0
        with sqlite3.connect(self.spool_path, timeout=30) as db:
            return db.execute("SELECT count(*) FROM items").fetchone()[0]

    def leased(self) -> int:
        """Leases a drain worker holds and has not yet ended: it is mid-batch."""
        with sqlite3.connect(self.spool_path, timeout=30) as db:
            return db.execute(
                "SELECT count(*) FROM leases WHERE until > ?", (time.time(),)
            ).fetchone()[0]

    def stop(self) -> None:
        for process in (self.web, self.drain, self.steady_drain):
            if process and process.poll() is None:
                process.terminate()
                process.wait(timeout=30)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Sender(threading.Thread):
    """Sends v2 batches at a steady rate and remembers which events were acknowledged."""

    def __init__(self, port: int, site_id: str, api_key: str, requests_per_second: float) -> None:
        super().__init__(daemon=True)
        self.port, self.interval = port, 1 / requests_per_second
        self.auth = "Basic " + b64encode(f"{site_id}:{api_key}".encode()).decode()
        self.acknowledged: list[str] = []
        self.sent = self.refused = 0
        self.refusals: list[str] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        number = 0
        next_at = time.monotonic()
        while not self.stopping.is_set():
            ids = [f"drill-{number + i}" for i in range(EVENTS_PER_REQUEST)]
            batch = [
                {"type": "person", "identifiers": {"id": f"p{(number + i) % PEOPLE}"}, "action": "event",
                 "name": "drilled", "id": event_id, "attributes": {"n": number + i}}
                for i, event_id in enumerate(ids)
            ]  # fmt: skip
            number += EVENTS_PER_REQUEST
            self.sent += 1
            try:
                connection.request(
                    "POST", "/api/v2/batch", body=json.dumps({"batch": batch}),
                    headers={"Authorization": self.auth, "Content-Type": "application/json"},
                )  # fmt: skip
                response = connection.getresponse()
                body = response.read()
                if response.status == 200:
                    self.acknowledged.extend(ids)
                else:
                    self.refused += 1
                    self.refusals.append(f"{response.status} {body[:200]!r}")
            except OSError as error:
                self.refused += 1
                self.refusals.append(repr(error))
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            next_at += self.interval
            time.sleep(max(0.0, next_at - time.monotonic()))


def run_drill(
    outage_seconds: float = 5, before_seconds: float = 2, after_seconds: float = 2,
    requests_per_second: float = 20, kill_drain: bool = True, drain_timeout: float = 120,
) -> Report:  # fmt: skip
    report = Report(outage_seconds=outage_seconds)
    with tempfile.TemporaryDirectory(prefix="ferry-drill-") as scratch:
        folder = Path(scratch)
        os.chmod(folder, 0o755)
        cluster = Cluster(folder)
        ferry = None
        try:
            with psycopg.connect(cluster.url, autocommit=True) as conn:
                conn.execute("CREATE DATABASE drill")
            database_url = cluster.url.replace("/postgres?", "/drill?")
            ferry = Ferry(folder, database_url)
            ferry.manage("migrate_schemas", "-v", "0")
            created = json.loads(ferry.manage(
                "create_account", "drill", "--name", "Drill", "--owner-email", "o@drill.example",
                "--owner-password", "a-long-drill-password", "--json",
            ))  # fmt: skip
            key = json.loads(ferry.manage("create_api_key", "drill", "--json"))
            ferry.start()

            sender = Sender(ferry.port, key["site_id"], key["api_key"], requests_per_second)
            sender.start()
            time.sleep(before_seconds)
            cluster.stop()
            outage_ends = time.monotonic() + outage_seconds
            while time.monotonic() < outage_ends:
                report.peak_backlog = max(report.peak_backlog, ferry.backlog())
                time.sleep(0.2)
            cluster.start()
            restarted = time.monotonic()
            if kill_drain:
                # Kill the drain while it holds a batch it has not finished, then replace it.
                while not ferry.leased() and time.monotonic() - restarted < 30:
                    time.sleep(0.005)
                ferry.kill_drain()
                report.drain_workers_killed += 1
                ferry.start_drain()
            time.sleep(after_seconds)
            sender.stopping.set()
            sender.join()
            deadline = time.monotonic() + drain_timeout
            while ferry.backlog() and time.monotonic() < deadline:
                time.sleep(0.1)
            report.drain_seconds_after_restart = time.monotonic() - restarted

            report.requests_sent, report.requests_refused = sender.sent, sender.refused
            report.requests_acknowledged = sender.sent - sender.refused
            report.refusals = sender.refusals[:5]
            acknowledged = set(sender.acknowledged)
            report.events_acknowledged = len(acknowledged)
            with psycopg.connect(database_url) as conn:
                conn.execute(f'SET search_path TO "{created["schema"]}"')
                present = [row[0] for row in conn.execute("SELECT dedupe_key FROM segments_event")]
                report.summary_total = conn.execute(
                    "SELECT coalesce(sum(count), 0) FROM segments_activitysummary"
                ).fetchone()[0]
            report.events_present = len(acknowledged & set(present))
            report.events_missing = len(acknowledged - set(present))
            report.events_unexpected = len(present) - report.events_present
        finally:
            if ferry:
                ferry.stop()
            cluster.close()
    return report
