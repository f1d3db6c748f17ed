"""The drain fed a trickle: small bursts, each drained by one pass, with the worker's writer
connection kept from pass to pass (as drain_forever runs) beside a writer opened for every
pass (as before, and as `manage.py drain --once` still does), alternated in the same run.

    python3 -m uv run python bench/ingest_trickle.py [--bursts 600]
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from bench._cluster import ferry_database, setup_django  # noqa: E402

SIZES = [1, 5, 50]
ROUNDS = 6  # each mode's bursts come in rounds, alternated, so drift hits both alike


def burst_seconds(spool, account_pk: int, size: int, overlap, first: int) -> float:
    """Spool `size` events and drain them in one pass; the seconds the pass took."""
    from ingest import wire
    from ingest.drain import drain_batches

    items = [
        json.dumps(wire.cio_event(f"p{n % 500}", {"name": "seen", "id": f"e{n}"}))
        for n in range(first, first + size)
    ]
    spool.append(str(account_pk), items)
    started = time.perf_counter()
    for _ in drain_batches(spool, 1000, 60, overlap=overlap):
        pass
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bursts", type=int, default=600, help="per burst size and mode")
    options = parser.parse_args()
    with ferry_database() as (folder, url, _):
        setup_django(folder, url)
        from accounts.models import Account
        from ingest.drain import Overlap
        from ingest.spool import get_spool

        spool = get_spool()
        pk = Account.objects.get(slug="bench").pk
        kept = Overlap()
        times: dict[tuple[int, str], list[float]] = {}
        sent = 0
        try:
            for size in SIZES:
                for _ in range(ROUNDS):
                    for mode, overlap in (("per pass", None), ("kept", kept)):
                        for _ in range(options.bursts // ROUNDS):
                            seconds = burst_seconds(spool, pk, size, overlap, sent)
                            times.setdefault((size, mode), []).append(seconds)
                            sent += size
        finally:
            kept.close()

    print(f"\nDrain passes of small bursts ({options.bursts} bursts per row, alternated in "
          f"rounds; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)\n")  # fmt: skip
    print(f"| {'items per burst':>15} | {'writer':<26} | {'p50 ms':>6} | {'p90 ms':>6} "
          f"| {'x per pass':>10} |")  # fmt: skip
    print(f"|{'-' * 17}|{'-' * 28}|{'-' * 8}|{'-' * 8}|{'-' * 12}|")
    for size in SIZES:
        base = statistics.median(times[(size, "per pass")])
        for mode, label in (
            ("per pass", "opened per pass (baseline)"),
            ("kept", "kept between passes"),
        ):
            values = times[(size, mode)]
            p50, p90 = statistics.median(values), statistics.quantiles(values, n=10)[-1]
            print(f"| {size:>15} | {label:<26} | {p50 * 1000:>6.1f} | {p90 * 1000:>6.1f} "
                  f"| {p50 / base:>10.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
