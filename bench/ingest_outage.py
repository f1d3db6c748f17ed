"""The outage drill at full length: a steady stream of Track API batches, PostgreSQL stopped
for 60 seconds and started again, one drain worker killed with SIGKILL mid-batch. Reports
that every acknowledged event is present exactly once and how long the backlog took.

    python3 -m uv run python bench/ingest_outage.py [--outage 60] [--rate 50]
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.outage.drill import EVENTS_PER_REQUEST, run_drill


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--outage", type=float, default=60)
    parser.add_argument("--rate", type=float, default=50, help="requests per second")
    options = parser.parse_args()
    report = run_drill(
        outage_seconds=options.outage, before_seconds=10, after_seconds=10,
        requests_per_second=options.rate, drain_timeout=600,
    )  # fmt: skip
    events_per_second = options.rate * EVENTS_PER_REQUEST
    print(
        f"\nOutage drill: {events_per_second:.0f} events/s offered, PostgreSQL down {options.outage:.0f} s\n"
    )
    print(f"| {'what':<46} | {'value':>10} |")
    print(f"|{'-' * 48}|{'-' * 12}|")
    for label, value in [
        ("requests sent", report.requests_sent),
        ("requests refused (must be 0)", report.requests_refused),
        ("events acknowledged", report.events_acknowledged),
        ("events present exactly once", report.events_present),
        ("events missing (must be 0)", report.events_missing),
        ("events not acknowledged but stored (must be 0)", report.events_unexpected),
        ("activity summary total (= acknowledged)", report.summary_total),
        ("peak spool backlog (items)", report.peak_backlog),
        ("drain workers killed with SIGKILL", report.drain_workers_killed),
        ("s from restart to empty spool (sending on)", f"{report.drain_seconds_after_restart:.1f}"),
    ]:
        print(f"| {label:<46} | {value:>10} |")


if __name__ == "__main__":
    main()
