"""Drain throughput: spooled events and attribute changes applied per second, end to end,
beside the raw COPY rate of the same items into the same tables, measured just before each row
(and, for comparison with earlier figures, the synthetic baseline of sessions 1-12).

    python3 -m uv run python bench/ingest_drain.py [--items 200000]

Workers take batches of INGEST_BATCH_SIZE (settings) unless a row says otherwise.
"""

import argparse
import json
import os
import random
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from bench._cluster import ferry_database, setup_django  # noqa: E402

PEOPLE = 20_000
EVENT_NAMES = ["page_viewed", "signed_in", "purchase", "added_to_cart", "search"]
PLANS = ["free", "basic", "pro", "enterprise"]


def items(count: int, event_share: float = 0.6) -> list[dict]:
    """A realistic mix: events for known people, attribute changes, some new people."""
    from ingest import wire

    rng = random.Random(7)
    now = time.time()
    generated = []
    for n in range(count):
        person = f"person-{rng.randrange(PEOPLE)}"
        if rng.random() < event_share:
            body = {"name": rng.choice(EVENT_NAMES), "id": f"bench-{n}",
                    "timestamp": int(now - rng.randrange(86400 * 30)),
                    "data": {"price": rng.randrange(100), "sku": f"sku-{rng.randrange(500)}"}}  # fmt: skip
            generated.append(wire.cio_event(person, body))
        else:
            body = {"plan": rng.choice(PLANS), "seats": rng.randrange(1, 50),
                    "email": f"{person}@example.com", "_timestamp": now + n / 1e6}  # fmt: skip
            generated.append(wire.cio_identify(person, body))
    return generated


def raw_copy_rate(schema: str, batch: list[dict]) -> float:
    """The items the drain is about to apply, written with nothing but COPY into the same
    tables with the same indexes: each event as the row the drain inserts (its person, name,
    data and timestamp), and each attribute change as one new segments_person row with the
    item's attributes (the drain updates existing people instead; COPY cannot update).

    The events' people are the stored ones where they exist (the first run's people are not
    there yet: their stand-ins are numbered like them), so the event indexes take entries
    spread over 20,000 people and 30 days, as the drain's do. Until the thirteenth session this
    baseline wrote synthetic rows instead (`synthetic_copy_rate`), which append to the right
    end of those indexes and ran about a quarter faster than the same items.

    It rolls back (nothing stays, and neither the drain nor this pays deferred checks)."""
    from django.db import connection, transaction

    now = datetime.now(UTC)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f'SET LOCAL search_path TO "{schema}"')
        cursor.execute("SELECT customer_id, id FROM segments_person WHERE customer_id IS NOT NULL")
        stored = dict(cursor.fetchall())
        # The rows are made before the clock starts: it times COPY (and psycopg's adaptation
        # of the values), not building them.
        events, people = [], []
        for n, item in enumerate(batch):
            if item["op"] == "event":
                customer_id = item["person"]["id"]
                person_id = stored.get(customer_id) or int(customer_id.split("-")[1]) + 1
                moment = datetime.fromtimestamp(item["timestamp"], UTC)
                events.append((person_id, None, item["kind"], item["name"],
                               json.dumps(item["data"]), moment, now, f"raw-{n}"))  # fmt: skip
            elif item["op"] == "identify":
                attributes = {**item["attributes"], "email": f"raw-{n}@example.com"}
                people.append((f"raw-{n}", attributes["email"], json.dumps(attributes),
                               json.dumps(dict.fromkeys(attributes, item["at"])), False, now,
                               now))  # fmt: skip
        started = time.perf_counter()
        columns = "person_id, anonymous_id, kind, name, data, timestamp, received_at, dedupe_key"
        with cursor.copy(f"COPY segments_event ({columns}) FROM STDIN") as copy:
            for row in events:
                copy.write_row(row)
        columns = (
            "customer_id, email, attributes, attribute_times, unsubscribed, created_at, updated_at"
        )
        with cursor.copy(f"COPY segments_person ({columns}) FROM STDIN") as copy:
            for row in people:
                copy.write_row(row)
        elapsed = time.perf_counter() - started
        transaction.set_rollback(True)  # measured; leave the tables as they were
    return len(batch) / elapsed


def synthetic_copy_rate(schema: str, count: int, event_share: float = 0.6) -> float:
    """The baseline of the first twelve sessions, still printed beside the other: the same mix
    of synthetic rows, events for the first 1,000 stored people, all at this moment (so the
    event indexes take them at their right ends), and one new segments_person row per
    attribute change. It rolls back."""
    from django.db import connection, transaction

    now = datetime.now(UTC)
    events = int(count * event_share)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f'SET LOCAL search_path TO "{schema}"')
        cursor.execute("SELECT id FROM segments_person LIMIT 1000")
        person_ids = [row[0] for row in cursor.fetchall()] or [None]
        started = time.perf_counter()
        columns = "person_id, anonymous_id, kind, name, data, timestamp, received_at, dedupe_key"
        with cursor.copy(f"COPY segments_event ({columns}) FROM STDIN") as copy:
            for n in range(events):
                copy.write_row((person_ids[n % len(person_ids)], None, "event", EVENT_NAMES[n % 5],
                                json.dumps({"price": n % 100, "sku": f"sku-{n % 500}"}), now, now,
                                f"raw-{n}"))  # fmt: skip
        columns = (
            "customer_id, email, attributes, attribute_times, unsubscribed, created_at, updated_at"
        )
        with cursor.copy(f"COPY segments_person ({columns}) FROM STDIN") as copy:
            for n in range(count - events):
                attributes = {
                    "plan": PLANS[n % 4],
                    "seats": n % 50,
                    "email": f"raw-{n}@example.com",
                }
                copy.write_row((f"raw-{n}", f"raw-{n}@example.com", json.dumps(attributes),
                                json.dumps(dict.fromkeys(attributes, 1.0)), False, now, now))  # fmt: skip
        elapsed = time.perf_counter() - started
        transaction.set_rollback(True)  # measured; leave the tables as they were
    return count / elapsed


def postgres_cpu_seconds(pgdata: Path) -> float:
    """CPU time of the benchmark's own PostgreSQL: the postmaster, its live processes, and
    the processes it has reaped (a backend's CPU goes to its parent's account when it ends)."""
    postmaster = int((pgdata / "postmaster.pid").read_text().split()[0])
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile: counted in the postmaster's reaped time
        pid = int(stat.parent.name)
        if pid == postmaster:
            ticks += sum(int(value) for value in fields[11:15])  # own and reaped children's
        elif int(fields[1]) == postmaster:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def drain_rate(
    spool_items: list[dict],
    account_ids: list[int],
    workers: int,
    batch_size: int | None = None,
    pgdata: Path | None = None,
) -> tuple[float, float]:
    """Spool the items (spread over the accounts), then time `manage.py drain --once` workers
    until the spool is empty. Returns items per second and the CPU seconds the drain took
    (its workers' own, and PostgreSQL's while they ran)."""
    from ingest.spool import get_spool

    spool = get_spool()
    for n, account_id in enumerate(account_ids):
        payloads = [json.dumps(item) for item in spool_items[n :: len(account_ids)]]
        for start in range(0, len(payloads), 10_000):
            spool.append(str(account_id), payloads[start : start + 10_000])
    command = [sys.executable, "manage.py", "drain", "--once"]
    if batch_size:
        command += ["--batch-size", str(batch_size)]
    postgres_before = postgres_cpu_seconds(pgdata) if pgdata else 0.0
    processes = [
        subprocess.Popen(command, cwd=BASE_DIR, stdout=subprocess.PIPE, text=True)
        for _ in range(workers)
    ]
    # "Applied N items from START to END using C s of CPU.": the drain itself, not Python's
    # start-up (PostgreSQL does next to nothing while the workers start).
    reports = [process.communicate()[0].split() for process in processes]
    postgres = postgres_cpu_seconds(pgdata) - postgres_before if pgdata else 0.0
    applied = sum(int(words[1]) for words in reports)
    elapsed = max(float(w[6]) for w in reports) - min(float(w[4]) for w in reports)
    if spool.pending_count():
        raise RuntimeError("the drain left items behind")
    return applied / elapsed, postgres + sum(float(w[8]) for w in reports)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=200_000)
    count = parser.parse_args().items
    with ferry_database() as (folder, url, account):
        setup_django(folder, url)
        from django.core.management import call_command

        from accounts.models import Account

        for n in range(2, 5):
            call_command("create_account", f"bench{n}", name=f"Bench {n}",
                         owner_email=f"o@bench{n}.example", owner_password="a-long-bench-password",
                         stdout=open(os.devnull, "w"))  # fmt: skip
        one = [Account.objects.get(slug="bench").pk]
        four = list(Account.objects.filter(slug__startswith="bench").values_list("pk", flat=True))
        rates = []
        plan = [(1, one, None, "1 account, 1 worker, people new"),
                (1, one, None, "1 account, 1 worker"),
                (1, one, 10_000, "1 account, 1 worker, batches of 10,000"),
                (2, one, None, "1 account, 2 workers"),
                (2, four, None, "4 accounts, 2 workers, people new"),
                (2, four, None, "4 accounts, 2 workers")]  # fmt: skip
        for run, (workers, accounts, batch_size, label) in enumerate(plan):
            # Every run sends new events; people repeat from the run before (steady state).
            batch = items(count)
            for item in batch:
                if item["op"] == "event":
                    item["dedupe"] = f"run{run}-{item['dedupe']}"
            # The baselines just before each row: on a shared machine the load moves within
            # minutes, and one baseline for all rows made every ratio depend on its moment.
            synthetic = synthetic_copy_rate(account["schema"], count)
            cpu_before = time.process_time(), postgres_cpu_seconds(folder / "pgdata")
            copy_rate = raw_copy_rate(account["schema"], batch)
            copy_cpu = time.process_time() - cpu_before[0]
            copy_cpu += postgres_cpu_seconds(folder / "pgdata") - cpu_before[1]
            rate, cpu = drain_rate(batch, accounts, workers, batch_size, folder / "pgdata")
            rates.append((label, rate, copy_rate, synthetic, cpu, copy_cpu, os.getloadavg()[0]))

    from django.conf import settings

    print(
        f"\nDrain throughput, {count} items (60% events, 40% attribute changes, {PEOPLE} people),"
        f" batches of {settings.INGEST_BATCH_SIZE:,}\n"
    )
    print(
        f"| {'what':<46} | {'per second':>10} | {'raw COPY /s':>11} | {'x raw COPY':>10} "
        f"| {'synthetic /s':>12} | {'x synthetic':>11} "
        f"| {'CPU s':>5} | {'COPY CPU s':>10} | {'x by CPU':>8} | load |"
    )
    print(
        f"|{'-' * 48}|{'-' * 12}|{'-' * 13}|{'-' * 12}|{'-' * 14}|{'-' * 13}|{'-' * 7}|{'-' * 12}"
        f"|{'-' * 10}|------|"
    )
    for label, rate, copy_rate, synthetic, cpu, copy_cpu, load in rates:
        print(
            f"| {label:<46} | {rate:>10,.0f} | {copy_rate:>11,.0f} | {rate / copy_rate:>10.2f} "
            f"| {synthetic:>12,.0f} | {rate / synthetic:>11.2f} "
            f"| {cpu:>5.1f} | {copy_cpu:>10.1f} | {copy_cpu / cpu:>8.2f} | {load:>4.1f} |"
        )
    copies = sorted(copy_rate for _, _, copy_rate, *_ in rates)
    print(
        f"\nraw COPY of the same items, measured before each row: {copies[0]:,.0f} to"
        f" {copies[-1]:,.0f}/s. synthetic: the baseline of sessions 1-12 (synthetic rows that"
        " append to the event indexes' right ends), measured just before it. CPU s: the drain"
        " workers' own CPU and PostgreSQL's while they ran; the raw COPY's Python and"
        " PostgreSQL. x by CPU: the raw COPY's CPU over the drain's."
    )


if __name__ == "__main__":
    main()
