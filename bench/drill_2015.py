"""The 2015 drill: delete old data and add capacity while keeping up with peak traffic.

One account with 1,000,000 people and 10,000,000 events over 90 days (bench/generate_account.py)
plus 50 smaller ones on a private PostgreSQL, Ferry under gunicorn with two drain workers, and
steady Track API ingest at half the drain capacity measured in the same run. Before, then
while retention deletes every event older than 45 days from the big account (about half)
under the governor, and `move_account` moves one small account to a second PostgreSQL server
when that command exists: the drain rate, the backlog, the dashboard's p95 and every
acknowledged event counted at the end (tests/maintenance/drill.py).

    python3 -m uv run python bench/drill_2015.py [--people 1000000] [--events 10000000]
"""

import argparse
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from tests.maintenance.drill import run_drill  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--people", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--small", type=int, default=50)
    parser.add_argument("--before", type=float, default=60)
    parser.add_argument("--during-max", type=float, default=1800)
    parser.add_argument("--burst", type=int, default=600, help="requests of 100 events")
    options = parser.parse_args()
    started = time.monotonic()

    def log(text: str) -> None:
        print(f"[{time.monotonic() - started:6.0f} s] {text}", file=sys.stderr, flush=True)

    report = run_drill(
        small_accounts=options.small, big_people=options.people, big_events=options.events,
        burst_requests=options.burst, before_seconds=options.before,
        during_max_seconds=options.during_max, probe_interval=0.25, log=log,
    )  # fmt: skip
    before, during = report.phases["before"], report.phases["during"]
    print(f"{report.accounts} accounts; the big one {report.big_people:,} people, "
          f"{report.big_events:,} events. Drain capacity {report.capacity:,.0f} items/s "
          f"(burst, two workers); offered {report.offered:,.0f} items/s.\n")  # fmt: skip
    print(
        "| phase | seconds | ingest items/s | drain items/s | x before | backlog start / max / end "
        "| dashboard p50 / p95 ms | requests | Track API p50 / p95 ms |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for phase in (before, during):
        print(f"| {phase.name} | {phase.seconds:.0f} | {phase.ingest_rate:,.0f} | "
              f"{phase.drain_rate:,.0f} | {phase.drain_rate / before.drain_rate:.2f} | "
              f"{phase.backlog_start:,} / {phase.backlog_max:,} / {phase.backlog_end:,} | "
              f"{phase.percentile(0.5):.0f} / {phase.percentile(0.95):.0f} | "
              f"{len(phase.dashboard_ms)} | {phase.percentile(0.5, phase.accept_ms):.0f} / "
              f"{phase.percentile(0.95, phase.accept_ms):.0f} |")  # fmt: skip
    print()
    print("| CPU, cores busy on average | before | during |\n|---|---|---|")
    kinds = sorted(set(before.cpu) | set(during.cpu), key=lambda k: -during.cpu.get(k, 0.0))
    for kind in [*kinds, None]:
        used = [(sum(p.cpu.values()) if kind is None else p.cpu.get(kind, 0.0)) / p.seconds
                for p in (before, during)]  # fmt: skip
        print(f"| {kind or 'all'} | {used[0]:.2f} | {used[1]:.2f} |")
    print()
    print("| the machine | before | during |\n|---|---|---|")
    for name, label in [
        ("cpu some", "some task waited for a CPU, share of the time"),
        ("io some", "some task waited for I/O, share of the time"),
        ("io full", "every task waited for I/O, share of the time"),
        ("written MB", "written to disk, MB/s"),
    ]:
        if name in before.machine and name in during.machine:
            print(f"| {label} | {before.machine[name] / before.seconds:.2f} | "
                  f"{during.machine[name] / during.seconds:.2f} |")  # fmt: skip
    print()
    print("| what | value |\n|---|---|")
    rows = [
        ("events older than 45 days in the big account", f"{report.old_events:,}"),
        ("deleted by retention", f"{report.retention_deleted:,}"),
        ("retention finished", "yes" if report.retention_finished else "no (time limit)"),
        ("retention seconds (of which paused by the governor)",
         f"{report.retention_seconds:.0f} ({report.retention_paused_seconds:.0f})"),
        ("move_account", report.move),
        ("events acknowledged", f"{report.events_acknowledged:,}"),
        ("present exactly once", f"{report.events_present:,}"),
        ("missing, unexpected", f"{report.events_missing}, {report.events_unexpected}"),
        ("backlog drained after ingest stopped, seconds", f"{report.drain_after_seconds:.1f}"),
        ("backlog left", f"{report.backlog_left}"),
        ("refusals and errors", "; ".join(report.refusals) or "none"),
    ]  # fmt: skip
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
