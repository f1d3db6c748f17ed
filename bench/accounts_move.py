"""Moving a big account to another server under a steady ingest stream.

Two private PostgreSQL clusters (the primary and `big`), Ferry under gunicorn with two drain
workers, an account filled by bench/generate_account.py (1,000,000 people by default), and
Track API batches at a steady rate. `manage.py move_account bench --to big` runs in the
middle; at the end every acknowledged event must be in the account's schema on `big`, once.

    python3 -m uv run python bench/accounts_move.py [--people 1000000] [--events 2000000]
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import psycopg

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from bench.generate_account import generate  # noqa: E402
from tests.drills import Cluster, Ferry  # noqa: E402
from tests.outage.drill import Sender  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--people", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--rate", type=float, default=20, help="Requests/s of 10 events each.")
    parser.add_argument("--jobs", type=int, default=2, help="MOVE_COPY_JOBS of the move.")
    parser.add_argument("--baseline-jobs", type=int, default=1,
                        help="Move it back with this many jobs, for a same-run baseline "
                             "(0: no baseline).")  # fmt: skip
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ferry-move-") as scratch:
        folder = Path(scratch)
        os.chmod(folder, 0o755)
        (folder / "a").mkdir()
        (folder / "b").mkdir()
        os.chmod(folder / "a", 0o755)
        os.chmod(folder / "b", 0o755)
        primary, big = Cluster(folder / "a"), Cluster(folder / "b")
        ferry = None
        try:
            primary_url, big_url = primary.create_database("bench"), big.create_database("bench")
            ferry = Ferry(folder, primary_url, {"INGEST_LEASE_SECONDS": "5"})
            ferry.env["FERRY_DATA_SERVERS"] = f"big={big_url}"
            ferry.env["MOVE_COPY_JOBS"] = str(options.jobs)
            ferry.manage("migrate_schemas", "-v", "0")
            created = json.loads(ferry.manage(
                "create_account", "bench", "--name", "Bench", "--owner-email", "o@bench.example",
                "--owner-password", "a-long-bench-password", "--json",
            ))  # fmt: skip
            schema = created["schema"]
            key = json.loads(ferry.manage("create_api_key", "bench", "--json"))
            started = time.perf_counter()
            generate(primary_url, schema, options.people, options.events)
            generated = time.perf_counter() - started
            with psycopg.connect(primary_url, autocommit=True) as conn:
                size = conn.execute(
                    "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s "
                    "AND c.relkind = 'r'",
                    [schema],
                ).fetchone()[0]
            ferry.start()
            sender = Sender(ferry.port, key["site_id"], key["api_key"], options.rate)
            sender.start()
            time.sleep(5)
            started = time.perf_counter()
            # A million people take minutes to copy on a busy machine: no 300 s harness limit.
            moved = json.loads(
                ferry.manage("move_account", "bench", "--to", "big", "--json", timeout=7200)
            )
            move_seconds = time.perf_counter() - started
            time.sleep(5)
            back = None
            if options.baseline_jobs:
                # The same-run baseline: the same account moved back with one job.
                ferry.env["MOVE_COPY_JOBS"] = str(options.baseline_jobs)
                started = time.perf_counter()
                back = json.loads(ferry.manage("move_account", "bench", "--to", "default",
                                               "--json", timeout=7200))  # fmt: skip
                back_seconds = time.perf_counter() - started
                ferry.env["MOVE_COPY_JOBS"] = str(options.jobs)
                time.sleep(5)
            final_url = primary_url if back else big_url
            sender.stopping.set()
            sender.join()
            deadline = time.monotonic() + 300
            while ferry.backlog() and time.monotonic() < deadline:
                time.sleep(0.2)
            acknowledged = set(sender.acknowledged)
            with psycopg.connect(final_url) as conn:
                present = {
                    row[0]
                    for row in conn.execute(
                        f'SELECT dedupe_key FROM "{schema}".segments_event '
                        "WHERE dedupe_key LIKE 'drill-%%'"
                    )
                }
                people = conn.execute(
                    f'SELECT count(*) FROM "{schema}".segments_person'
                ).fetchone()[0]
        finally:
            if ferry:
                ferry.stop()
            primary.close()
            big.close()

    print(f"\nMoving an account ({options.people:,} people, {options.events:,} events, "
          f"{size / 1024**2:,.0f} MB of tables; generated in {generated:.0f} s) from the primary "
          f"to `big` while {options.rate:g} requests/s of 10 events arrive:\n")  # fmt: skip
    print("| what | value |")
    print("|---|---|")
    print(f"| move to big ({options.jobs} jobs): phase | {moved['phase']} {moved['error']} |")
    print(f"| move to big: total time of move_account | {move_seconds:.1f} s |")
    print(f"| move to big: write pause (drain paused → resumed) | "
          f"{moved['write_pause_seconds']:.1f} s |")  # fmt: skip
    if back:
        print(f"| baseline, moved back ({options.baseline_jobs} job): phase | {back['phase']} "
              f"{back['error']} |")  # fmt: skip
        print(f"| baseline: total time / write pause | {back_seconds:.1f} s / "
              f"{back['write_pause_seconds']:.1f} s |")  # fmt: skip
        print(f"| x baseline (total, pause) | {move_seconds / back_seconds:.2f}, "
              f"{moved['write_pause_seconds'] / back['write_pause_seconds']:.2f} |")  # fmt: skip
    print(f"| rows verified (counts and checksums, every table) | {moved['rows']:,} |")
    print(f"| people where the account ends | {people:,} |")
    print(f"| requests sent / refused | {sender.sent} / {sender.refused} |")
    print(f"| events acknowledged | {len(acknowledged):,} |")
    print(f"| events lost | {len(acknowledged - present)} |")
    print(f"| events stored but not acknowledged | {len(present - acknowledged)} |")


if __name__ == "__main__":
    main()
