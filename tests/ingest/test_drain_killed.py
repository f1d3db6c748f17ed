"""A drain worker killed with SIGKILL while one account's batches overlap (one written on the
writer's connection while the next is planned): nothing is lost, nothing is applied twice."""

import json
import os
import random
import signal
import tempfile
import time
from pathlib import Path

import psycopg
import pytest

from ingest import wire
from ingest.spool import Spool
from tests.drills import Cluster, Ferry, stored_event_keys

pytestmark = pytest.mark.slow

PEOPLE, STEPS = 30, 60


def test_a_drain_killed_between_overlapped_batches_loses_and_duplicates_nothing():
    with tempfile.TemporaryDirectory(prefix="ferry-drain-kill-") as scratch:
        folder = Path(scratch)
        os.chmod(folder, 0o755)
        cluster = Cluster(folder)
        ferry = None
        try:
            url = cluster.create_database("killed")
            # Small batches, so that a worker holds two of them (one written, one planned)
            # most of the time; short leases, so that a killed worker's come back quickly.
            ferry = Ferry(folder, url, {"INGEST_BATCH_SIZE": "100", "INGEST_LEASE_SECONDS": "1"})
            ferry.manage("migrate_schemas", "-v", "0")
            created = json.loads(ferry.manage(
                "create_account", "killed", "--name", "Killed", "--owner-email",
                "o@killed.example", "--owner-password", "a-long-drill-password", "--json",
            ))  # fmt: skip
            (account_id,) = ferry.account_ids()
            # Each person's steps in order (the arrival time decides between them, so a
            # step applied again after a later one changes nothing), and an event per step.
            items = []
            for step in range(STEPS):
                for person in range(PEOPLE):
                    items.append(wire.cio_identify(str(person), {"step": step}))
                    items.append(wire.cio_event(str(person), {"name": "tick", "id": f"{person}-{step}"}))  # fmt: skip
            Spool(ferry.spool_path).append(account_id, [json.dumps(item) for item in items])

            killed_mid_work, rng = 0, random.Random(3)
            for _ in range(4):
                worker = ferry.start_drain()
                deadline = time.monotonic() + 60
                while not ferry.leased() and time.monotonic() < deadline:
                    time.sleep(0.005)
                time.sleep(rng.uniform(0.05, 0.4))
                worker.send_signal(signal.SIGKILL)
                worker.wait()
                ferry.drains.remove(worker)
                killed_mid_work += ferry.backlog() > 0
            assert killed_mid_work >= 2, "the kills came too late to test anything"

            ferry.start_drain()
            deadline = time.monotonic() + 120
            while ferry.backlog() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert ferry.backlog() == 0

            keys = stored_event_keys(url, created["schema"])
            expected = {f"{person}-{step}" for person in range(PEOPLE) for step in range(STEPS)}
            assert sorted(keys) == sorted(expected)  # each exactly once
            with psycopg.connect(url) as conn:
                conn.execute(f'SET search_path TO "{created["schema"]}"')
                steps = dict(conn.execute(
                    "SELECT customer_id, (attributes->>'step')::int FROM segments_person"
                ).fetchall())  # fmt: skip
                summaries = conn.execute(
                    "SELECT count(*), sum(count), min(count) FROM segments_activitysummary"
                ).fetchone()
            assert steps == {str(person): STEPS - 1 for person in range(PEOPLE)}
            assert summaries == (PEOPLE, PEOPLE * STEPS, STEPS)
        finally:
            if ferry is not None:
                for worker in ferry.drains:
                    worker.kill()
                    worker.wait()
            cluster.close()
