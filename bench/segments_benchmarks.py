"""Segments at a million people: full recomputes, the editor's live count, and the drain with
20 active segments against none, each beside a baseline measured in the same run.

    python3 -m uv run python bench/segments_benchmarks.py [--people 1000000 --events 10000000]
        [--keep /var/tmp/ferry-segments-bench] [--only recompute|counts|drain ...]

The account is filled by bench/generate_account.py (inside PostgreSQL, a few minutes). With
--keep, the cluster stays in that folder and later runs reuse the filled account (the segments
of the last run are deleted first; the drain's earlier items stay, a few hundred thousand rows
against ten million).
"""

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from bench._cluster import ferry_database, filled, mark_filled  # noqa: E402
from bench.generate_account import generate  # noqa: E402

ATTRIBUTE_ONLY = {"type": "group", "op": "and", "children": [
    {"type": "attribute", "name": "plan", "operator": "equals", "value": "pro"},
    {"type": "attribute", "name": "country", "operator": "in", "value": ["DE", "FR"]},
]}  # fmt: skip
EVENT_COUNT = {"type": "event", "name": "purchase", "operator": "at_least", "count": 2,
               "within_days": 30}  # fmt: skip
# A large segment read from the activity summaries (about 300,000 members): its change moves
# few people out of many, which once made the write scan everyone leaving for every member.
EVENT_TOTAL = {"type": "event", "name": "purchase", "operator": "at_least", "count": 2}
NESTED = {"type": "group", "op": "or", "children": [
    {"type": "group", "op": "and", "children": [
        {"type": "attribute", "name": "plan", "operator": "equals", "value": "enterprise"},
        {"type": "attribute", "name": "seats", "operator": "greater_than", "value": 20},
    ]},
    {"type": "group", "op": "and", "children": [
        {"type": "group", "op": "not", "children": [
            {"type": "event", "name": "signed_in", "operator": "performed", "within_days": 7},
        ]},
        {"type": "attribute", "name": "lifetime_value", "operator": "between", "value": [100, 500]},
        {"type": "attribute", "name": "last_seen_at", "operator": "within_last_days", "value": 60},
    ]},
]}  # fmt: skip


def segment_of(segment_id: int) -> dict:
    return {"type": "group", "op": "and", "children": [
        {"type": "segment", "segment": segment_id, "operator": "in"},
        {"type": "event", "name": "upgraded", "operator": "performed"},
    ]}  # fmt: skip


def timed(function, *args) -> float:
    started = time.perf_counter()
    function(*args)
    return time.perf_counter() - started


def plain_scan() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM segments_person WHERE attributes ? 'plan'")


def save(segment, rules: dict) -> None:
    from django.db import transaction

    from segments.rules import parse_rule
    from segments.segment_actions import rule_context, save_segment

    with transaction.atomic():
        rule = parse_rule(rules, rule_context(segment))
        save_segment(segment, name=segment.name or "bench", description="", rule=rule,
                     changed_by="bench@example.com")  # fmt: skip


def recompute_table() -> list[tuple[str, float, float, int]]:
    from segments.models import Segment

    baseline = min(timed(plain_scan) for _ in range(3))
    rows = [("plain scan of people (baseline)", baseline, baseline, 0)]
    plan = [("attribute only", ATTRIBUTE_ONLY), ("event count in a window", EVENT_COUNT),
            ("nested groups", NESTED), ("event count over all time", EVENT_TOTAL)]  # fmt: skip
    made = []
    for label, rules in plan:
        segment = Segment(name=label, kind=Segment.Kind.RULES)
        first = timed(save, segment, rules)
        made.append(segment)
        # Steady state: the rule changes a little; most members stay.
        changed = {"type": "group", "op": "and", "children": [
            rules, {"type": "attribute", "name": "seats", "operator": "not_equals", "value": 3}]}  # fmt: skip
        again = timed(save, segment, changed)
        rows.append((label, first, again, segment.member_count))
    segment = Segment(name="segment of segment", kind=Segment.Kind.RULES)
    first = timed(save, segment, segment_of(made[0].pk))
    again = timed(save, segment, {**segment_of(made[0].pk), "op": "or"})
    rows.append(("segment of segment", first, again, segment.member_count))
    return rows


def live_counts(rounds: int) -> dict[str, list[float]]:
    """Editor counts of rules as a user types them (values vary): the first answer (an
    estimate from a sample), then the exact count that follows it, and the plain scan."""
    from datetime import UTC, datetime

    from segments.compiler import count_matching, estimate_matching
    from segments.rules import parse_rule

    rng = random.Random(5)
    times: dict[str, list[float]] = {
        "estimate": [], "exact": [], "scan": [], "error": [], "in_range": []
    }  # fmt: skip
    for n in range(rounds):
        rules = [
            {"type": "attribute", "name": "plan", "operator": "equals",
             "value": rng.choice(["free", "basic", "pro"])},
            {"type": "event", "name": rng.choice(["purchase", "upgraded"]), "operator": "at_least",
             "count": rng.randint(1, 3), "within_days": rng.randint(7, 60)},
            {"type": "group", "op": "and", "children": [
                {"type": "attribute", "name": "seats", "operator": "greater_than",
                 "value": rng.randint(1, 40)},
                {"type": "event", "name": "signed_in", "operator": "performed"}]},
            NESTED,
        ][n % 4]  # fmt: skip
        rule = parse_rule(rules)
        started = time.perf_counter()
        estimate = estimate_matching(rule, datetime.now(UTC))  # as the editor answers first
        times["estimate"].append(time.perf_counter() - started)
        started = time.perf_counter()
        exact = count_matching(rule, datetime.now(UTC))  # and then
        times["exact"].append(time.perf_counter() - started)
        times["scan"].append(timed(plain_scan))
        if estimate is not None and exact:
            times["error"].append(abs(estimate.count - exact) / exact)
        if estimate is not None:
            times["in_range"].append(float(estimate.low <= exact <= estimate.high))
    return times


def vacuum_memberships() -> None:
    """Vacuum what deleting segments left dead (every membership of the run before, millions
    in a kept account), as autovacuum would have between a user's edits. Without it the next
    part ran against those dead rows: a kept account's membership table once held 13,600,000
    dead rows beside 200,000 live ones (autovacuum, slowed by its cost limit, was cut off by
    every run's shutdown), and inserting 600,000 memberships took 3.5-5 s instead of 2.8 s."""
    from django.db import connection

    with connection.cursor() as cursor:
        for table in (
            "segments_membership",
            "segments_membershipchange",
            "segments_membershipchangeset",
            "segments_membershipchangechunk",
        ):
            cursor.execute(f"VACUUM (ANALYZE) {table}")  # fmt: skip


def drain_items(count: int, people: int, seed: int) -> list[dict]:
    from ingest import wire

    rng = random.Random(seed)
    now = time.time()
    run = int(now)  # event ids new to a reused account too
    items = []
    for n in range(count):
        who = f"c{rng.randrange(1, people + 1)}"
        if rng.random() < 0.6:
            items.append(wire.cio_event(who, {
                "name": rng.choice(["purchase", "signed_in", "upgraded", "page_viewed"]),
                "id": f"d{run}-{seed}-{n}", "timestamp": int(now - rng.randrange(86400 * 30))}))  # fmt: skip
        else:
            items.append(wire.cio_identify(who, {
                "plan": rng.choice(["free", "basic", "pro", "enterprise"]),
                "seats": rng.randrange(1, 50), "_timestamp": now + n / 1e6}))  # fmt: skip
    return items


# Runs of each kind (none, 20 active), interleaved so that drift hits both alike.
DRAIN_PAIRS = 3
IN_SEGMENTS: list[float] = []  # seconds of each drained batch spent updating memberships


def drain_rate(items: list[dict], batch: int) -> float:
    from ingest import apply

    update = apply.update_segment_memberships

    def timed_update(*args, **kwargs):
        started = time.perf_counter()
        try:
            return update(*args, **kwargs)
        finally:
            IN_SEGMENTS.append(time.perf_counter() - started)

    apply.update_segment_memberships = timed_update
    try:
        started = time.perf_counter()
        for start in range(0, len(items), batch):
            apply.apply_items(items[start : start + batch])
        return len(items) / (time.perf_counter() - started)
    finally:
        apply.update_segment_memberships = update


def twenty_segments() -> None:
    from segments.models import Segment

    first = None
    for n in range(20):
        rules = [ATTRIBUTE_ONLY, EVENT_COUNT, NESTED,
                 {"type": "attribute", "name": "seats", "operator": "greater_than", "value": n},
                 segment_of(first.pk) if first else EVENT_COUNT][n % 5]  # fmt: skip
        segment = Segment(name=f"drain {n}", kind=Segment.Kind.RULES)
        save(segment, rules)
        first = first or segment


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--people", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--drain-items", type=int, default=50_000)
    parser.add_argument("--keep", type=Path, help="a folder to keep the filled account in")
    parser.add_argument(
        "--only", action="append", choices=["recompute", "counts", "drain"],
        help="run only this part (repeatable); all three by default",
    )  # fmt: skip
    options = parser.parse_args()
    parts = set(options.only or ["recompute", "counts", "drain"])
    size = f"{options.people} people, {options.events} events"
    with ferry_database(options.keep) as (folder, url, account_info):
        os.environ.update(DATABASE_URL=url, FERRY_VAR_DIR=str(folder / "var"), LOG_LEVEL="WARNING")
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
        started = time.perf_counter()
        if account_info["reused"] and filled(folder, size):
            generated = None
        elif account_info["reused"]:
            raise SystemExit(f"{folder} holds an account not filled as asked; delete the folder")
        else:
            generate(url, account_info["schema"], options.people, options.events)
            generated = time.perf_counter() - started
            mark_filled(folder, size)
        import django

        django.setup()
        from accounts.models import Account
        from segments.models import Segment

        account = Account.objects.get(slug="bench")
        with account:
            Segment.objects.all().delete()  # a reused account's segments of the last run
            vacuum_memberships()
            recompute = recompute_table() if "recompute" in parts else []
            counts = live_counts(options.rounds) if "counts" in parts else {}
            Segment.objects.all().delete()
            vacuum_memberships()
            if "drain" in parts:
                twenty_segments()
                # Their first computations wrote millions of memberships that no VACUUM or
                # ANALYZE has seen (autovacuum would within a minute or so): the planner took
                # the table for empty, and every membership looked up by the drain was read
                # from the heap. Measured both ways on the same account, one after the other:
                # updating memberships took 0.49 s per batch (median) without, 0.43-0.47 with.
                vacuum_memberships()
            rates: dict[str, list[float]] = {"none": [], "20": [], "in segments": []}
            if "drain" in parts:
                # Not counted: the first run after the cluster started read the people it
                # touched from the kernel's cache into PostgreSQL's, and ran slower for it (0.84
                # s per batch against 0.44 s in a later run), which made the baseline it
                # belonged to look slow and the ratio better than it is.
                Segment.objects.update(kind=Segment.Kind.MANUAL)
                drain_rate(drain_items(options.drain_items, options.people, seed=-1), 10_000)
            for run in range(2 * DRAIN_PAIRS if "drain" in parts else 0):  # interleaved
                active = run % 2 == 1
                kind = Segment.Kind.RULES if active else Segment.Kind.MANUAL
                Segment.objects.update(kind=kind)
                items = drain_items(options.drain_items, options.people, seed=run)
                IN_SEGMENTS.clear()
                rates["20" if active else "none"].append(drain_rate(items, 10_000))
                if active:
                    rates["in segments"].extend(IN_SEGMENTS)

    how = "reused" if generated is None else f"generated in {generated:.0f} s"
    print(f"\nSegments at {options.people:,} people and {options.events:,} events ({how}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)\n")  # fmt: skip
    if recompute:
        print_recompute(recompute)
    if counts:
        print_counts(counts, options.rounds)
    if rates["none"]:
        print_drain(rates, options.drain_items)


def print_recompute(recompute: list[tuple[str, float, float, int]]) -> None:
    print("Full recompute (seconds; first computation, then a changed rule)\n")
    print(
        f"| {'segment':<32} | {'first':>6} | {'again':>6} | {'x baseline':>10} | {'members':>9} |"
    )
    print(f"|{'-' * 34}|{'-' * 8}|{'-' * 8}|{'-' * 12}|{'-' * 11}|")
    base = recompute[0][1]
    for label, first, again, size in recompute:
        print(f"| {label:<32} | {first:>6.2f} | {again:>6.2f} | {max(first, again) / base:>10.1f} "
              f"| {size:>9,} |")  # fmt: skip


def print_counts(counts: dict[str, list[float]], rounds: int) -> None:
    p = lambda values, q: statistics.quantiles(values, n=100)[q - 1] * 1000  # noqa: E731
    print(f"\nEditor live count, {rounds} rules of 4 shapes (milliseconds)\n")
    print(f"| {'query':<40} | {'p50':>6} | {'p95':>6} | {'x baseline p95':>14} |")
    print(f"|{'-' * 42}|{'-' * 8}|{'-' * 8}|{'-' * 16}|")
    scans = counts["scan"]
    for label, key in (("plain scan of people (baseline)", "scan"),
                       ("first answer: estimate from a sample", "estimate"),
                       ("exact count (follows the estimate)", "exact")):  # fmt: skip
        values = counts[key]
        print(f"| {label:<40} | {p(values, 50):>6.0f} | {p(values, 95):>6.0f} "
              f"| {p(values, 95) / p(scans, 95):>14.2f} |")  # fmt: skip
    if counts["error"]:
        errors = counts["error"]
        print(f"\nEstimate against the exact count: median error {statistics.median(errors):.1%}, "
              f"worst {max(errors):.1%}; the exact count inside the range shown with the estimate "
              f"{sum(counts['in_range']):.0f} times of {len(counts['in_range'])}")  # fmt: skip


def print_drain(rates: dict[str, list[float]], drain_items: int) -> None:
    none, twenty = statistics.median(rates["none"]), statistics.median(rates["20"])
    print(
        f"\nDrain, {drain_items:,} items per run, batches of 10,000, median of {DRAIN_PAIRS} "
        "runs each (interleaved, after a warm-up run not counted)\n"
    )
    print(f"| {'segments':<32} | {'items/s':>8} | {'x none':>7} |")
    print(f"|{'-' * 34}|{'-' * 10}|{'-' * 9}|")
    print(f"| {'none (baseline)':<32} | {none:>8,.0f} | {1:>7.2f} |")
    print(f"| {'20 active':<32} | {twenty:>8,.0f} | {twenty / none:>7.2f} |")
    spent = rates["in segments"]
    print(f"\nUpdating memberships, per batch of 10,000 with 20 active segments: median "
          f"{statistics.median(spent):.2f} s, mean {statistics.mean(spent):.2f} s (of "
          f"{10_000 / twenty:.2f} s per batch; {10_000 / none:.2f} s per batch with none); "
          f"each batch: {', '.join(f'{s:.2f}' for s in spent)}")  # fmt: skip


if __name__ == "__main__":
    main()
