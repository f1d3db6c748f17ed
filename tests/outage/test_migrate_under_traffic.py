"""The all-accounts migration run while Ferry takes traffic: no 5xx, nothing lost.

A deployment's processes (gunicorn and two drain workers) serve three accounts on a private
cluster. Every account schema is first taken back one real migration (with the SQL Django
writes for unapplying it): the latest of `segments`, whose forward run drops (or creates) an
index on a table the drain writes and dashboards read. Then, while clients load dashboard pages, send Track API batches and
probe `/readyz`, `manage.py migrate_schemas` brings every schema forward again through the
migration runner (which waits for the governor whenever the drain is behind). Requests may
wait for a lock; none may fail, every acknowledged event must be applied afterwards, and the
migration must be complete in every schema.
"""

import http.client
import json
import subprocess
import threading
import time
from base64 import b64encode
from collections import Counter

import psycopg
import pytest
from django.db.migrations.loader import MigrationLoader

from tests.drills import DrillAccount, EventTally, stored_event_keys

pytestmark = pytest.mark.slow

EVENTS_PER_REQUEST = 20


def latest_migration(app: str) -> str:
    graph = MigrationLoader(None, ignore_no_migrations=True).graph
    [leaf] = [node for node in graph.leaf_nodes() if node[0] == app]
    return leaf[1]


class Traffic:
    """Client threads, each asking its own requests in turn over one keep-alive connection;
    every answer's status is counted, and 5xx, connection errors and other unexpected
    answers are kept."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.statuses: Counter = Counter()
        self.failures: list[str] = []
        self.acknowledged: dict[str, set[str]] = {}
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []
        self._numbers = iter(range(10**9))
        self._lock = threading.Lock()

    def add_client(self, requests) -> None:
        self.threads.append(threading.Thread(target=self._run, args=(requests,), daemon=True))

    def _run(self, requests) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        while not self.stopping.is_set():
            for make in requests:
                method, path, headers, body, on_success, expected = make()
                try:
                    connection.request(method, path, body=body, headers=headers)
                    response = connection.getresponse()
                    text = response.read()
                except OSError as error:
                    self.failures.append(f"{method} {path}: {error!r}")
                    connection.close()
                    connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                    continue
                with self._lock:
                    self.statuses[response.status] += 1
                if response.status not in expected:
                    self.failures.append(f"{method} {path}: {response.status} {text[:200]!r}")
                elif response.status == 200 and on_success:
                    on_success()

    def dashboard(self, account: DrillAccount, person_id: int) -> list:
        headers = {"Host": account.host, "Cookie": f"ferry_session={account.session}"}
        # The profile reads the person's events, through the index the migration rebuilds.
        paths = ("/", "/people/", "/people/?q=p1", f"/people/{person_id}/")
        return [lambda path=path: ("GET", path, headers, None, None, {200}) for path in paths]

    def ingestion(self, account: DrillAccount) -> list:
        auth = "Basic " + b64encode(f"{account.site_id}:{account.api_key}".encode()).decode()
        headers = {"Host": "localhost", "Authorization": auth, "Content-Type": "application/json"}
        acknowledged = self.acknowledged.setdefault(account.slug, set())

        def batch():
            number = next(self._numbers)
            ids = [f"migrate-{number}-{n}" for n in range(EVENTS_PER_REQUEST)]
            operations = [
                {"type": "person", "action": "event", "identifiers": {"id": f"p{n}"},
                 "name": "during-migrate", "id": event_id}
                for n, event_id in enumerate(ids)
            ]  # fmt: skip
            body = json.dumps({"batch": operations})
            return "POST", "/api/v2/batch", headers, body, lambda: acknowledged.update(ids), {200}

        return [batch]

    def readiness(self, account: DrillAccount) -> list:
        return [lambda: ("GET", "/readyz", {"Host": account.host}, None, None, {200})]

    def __enter__(self) -> "Traffic":
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=120)


def first_person(url: str, schema: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute(f'SELECT min(id) FROM "{schema}".segments_person').fetchone()[0]


def take_back(url: str, schemas: list[str], app: str, name: str, backwards_sql: str) -> None:
    """Unapply migration `name` in every schema with the SQL Django writes for it."""
    with psycopg.connect(url, autocommit=True) as conn:
        for schema in schemas:
            conn.execute(f'SET search_path TO "{schema}"')
            conn.execute(backwards_sql)  # BEGIN; ... COMMIT;
            conn.execute("DELETE FROM django_migrations WHERE app = %s AND name = %s", [app, name])


def migration_state(url: str, schemas: list[str], app: str, name: str) -> dict[str, bool]:
    with psycopg.connect(url) as conn:
        return {
            schema: conn.execute(
                f'SELECT EXISTS (SELECT 1 FROM "{schema}".django_migrations '
                "WHERE app = %s AND name = %s)",
                [app, name],
            ).fetchone()[0]
            for schema in schemas
        }


def test_migrating_every_schema_under_traffic_answers_no_5xx_and_loses_nothing(
    drill_site, tmp_path
):
    leaf = latest_migration("segments")
    schemas = [account.schema for account in drill_site.accounts]
    ferry = drill_site.ferry(tmp_path, {"INGEST_RATE_LIMIT_PER_SECOND": "0"})
    # Django's SQL for unapplying it, written in an account schema (on public it is a no-op).
    sql = ferry.manage("tenant_command", "sqlmigrate", "segments", leaf, "--backwards",
                       "--schema", schemas[0])  # fmt: skip
    assert "DROP INDEX" in sql or "CREATE INDEX" in sql, sql
    take_back(drill_site.url, schemas, "segments", leaf, sql)
    assert not any(migration_state(drill_site.url, schemas, "segments", leaf).values())
    try:
        ferry.start(drains=2)
        north, south, west = drill_site.accounts
        traffic = Traffic(ferry.port)
        traffic.add_client(traffic.ingestion(north) + traffic.ingestion(south))
        traffic.add_client(traffic.ingestion(west) + traffic.ingestion(north))
        with traffic:
            for account, probe in ((north, north), (south, west)):
                # Once the first batch is applied, the people pages show someone.
                deadline = time.monotonic() + 60
                while (person := first_person(drill_site.url, account.schema)) is None:
                    assert time.monotonic() < deadline, "the first batches were not applied"
                    time.sleep(0.1)
                client = traffic.dashboard(account, person) + traffic.readiness(probe)
                traffic.add_client(client)
                traffic.threads[-1].start()
            time.sleep(2)  # traffic and drain in their stride
            started, answered = time.monotonic(), traffic.statuses.total()
            # As run on deploy; it would time out here if it waited for ingestion for good.
            runner = ferry.popen("migrate_schemas")
            try:
                output, errors = runner.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                runner.kill()
                raise
            took = time.monotonic() - started
            answered = traffic.statuses.total() - answered
            time.sleep(1)
        deadline = time.monotonic() + 60
        while ferry.backlog() and time.monotonic() < deadline:
            time.sleep(0.2)
        backlog_left = ferry.backlog()
    finally:
        ferry.stop()
    paused = "Waiting for ingestion" in errors
    print(
        f"\nmigrate_schemas took {took:.1f} s under traffic (paused for ingestion: {paused}), "
        f"{answered} answers meanwhile; all answers: {dict(traffic.statuses)}; "
        f"{output.strip().splitlines()[-1]}"
    )
    assert runner.returncode == 0, errors[-2000:]
    assert traffic.failures == [], traffic.failures[:5]
    assert f"{len(schemas)} migrated" in output, output
    assert migration_state(drill_site.url, schemas, "segments", leaf) == dict.fromkeys(
        schemas, True
    )
    # The clients kept asking all through the run.
    assert answered > 20, traffic.statuses
    # What ingestion acknowledged meanwhile is applied, exactly once.
    assert backlog_left == 0
    tally = EventTally()
    for account in drill_site.accounts:
        stored = stored_event_keys(drill_site.url, account.schema, "during-migrate")
        tally.count(traffic.acknowledged.get(account.slug, set()), stored)
    assert tally.events_acknowledged > 0
    assert (tally.events_missing, tally.events_unexpected) == (0, 0)
