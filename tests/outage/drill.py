"""The 2015 drill, small enough for the test suite and large enough for a benchmark.

A private PostgreSQL cluster, Ferry under gunicorn with its drain worker, and a steady stream
of Track API batches. PostgreSQL is stopped for a while and started again (and, optionally,
the drain worker is killed with SIGKILL mid-batch and replaced); at the end every acknowledged
event must be in the account's schema exactly once.
"""

import http.client
import json
import os
import tempfile
import threading
import time
from base64 import b64encode
from dataclasses import dataclass
from pathlib import Path

import psycopg

from tests.drills import Cluster, EventTally, Ferry, stored_event_keys

EVENTS_PER_REQUEST = 10
PEOPLE = 200


@dataclass
class Report(EventTally):
    requests_sent: int = 0
    requests_acknowledged: int = 0
    requests_refused: int = 0
    summary_total: int = 0
    peak_backlog: int = 0
    outage_seconds: float = 0.0
    drain_seconds_after_restart: float = 0.0
    drain_workers_killed: int = 0


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
            database_url = cluster.create_database("drill")
            # Short leases: the killed worker's batch comes back within the drill.
            ferry = Ferry(folder, database_url, {"INGEST_LEASE_SECONDS": "5"})
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
            report.count(
                set(sender.acknowledged), stored_event_keys(database_url, created["schema"])
            )
            with psycopg.connect(database_url) as conn:
                conn.execute(f'SET search_path TO "{created["schema"]}"')
                report.summary_total = conn.execute(
                    "SELECT coalesce(sum(count), 0) FROM segments_activitysummary"
                ).fetchone()[0]
        finally:
            if ferry:
                ferry.stop()
            cluster.close()
    return report
