"""Fill one account with people and events, fast, inside PostgreSQL (generate_series).

Realistic enough for benchmarks: identifiers of both kinds, a dozen attributes of every type,
events of ten names over 90 days, activity summaries and events per day that match them, and
a few people with very long timelines. Reusable:

    from bench.generate_account import generate
    generate(schema, people=1_000_000, events=10_000_000)

or `python3 -m uv run python bench/generate_account.py --people 1000000 --events 10000000`
against DATABASE_URL (account `bench`, created if missing).
"""

import argparse
import os
import sys
import time
from pathlib import Path

import psycopg

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

PLANS = ["free", "basic", "pro", "enterprise"]
COUNTRIES = ["NO", "SE", "DE", "FR", "US", "GB", "NL", "ES"]
EVENT_NAMES = ["page_viewed", "signed_in", "searched", "added_to_cart", "purchase",
               "invited_teammate", "exported_report", "opened_email", "clicked_email", "upgraded"]  # fmt: skip
# One person in this many gets a long timeline, for the profile benchmark.
HEAVY_EVERY = 100_000
HEAVY_EVENTS = 5_000


def generate(database_url: str, schema: str, people: int, events: int) -> dict[str, float]:
    """Fill `schema`; returns seconds per step."""
    timings: dict[str, float] = {}
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        conn.execute("SET maintenance_work_mem = '512MB'")
        conn.execute("SET synchronous_commit = off")  # a generator: its rows are disposable
        # Every person id it uses exists: skip the per-row foreign-key checks (superuser only).
        conn.execute("SET session_replication_role = replica")

        started = time.perf_counter()
        conn.execute(
            """
            INSERT INTO segments_person (customer_id, email, attributes, attribute_times,
                                         unsubscribed, created_at, updated_at)
            SELECT 'c' || n,
                   'user' || n || '@example' || (n %% 100) || '.com',
                   jsonb_build_object(
                       'email', 'user' || n || '@example' || (n %% 100) || '.com',
                       'first_name', 'Name' || (n %% 5000),
                       'plan', (%(plans)s::text[])[1 + n %% 4],
                       'country', (%(countries)s::text[])[1 + n %% 8],
                       'seats', n %% 50,
                       'lifetime_value', round((n %% 10000) / 7.0, 2),
                       'vip', n %% 97 = 0,
                       'company', 'Company ' || (n %% 20000),
                       'created_at', 1700000000 + n %% 31536000,
                       'last_seen_at', 1760000000 + n %% 7776000
                   ),
                   '{}'::jsonb,
                   n %% 23 = 0,
                   timestamptz '2026-01-01' + make_interval(secs => n * 25),
                   now()
            FROM generate_series(1, %(people)s::int) AS n
            """,
            {"plans": PLANS, "countries": COUNTRIES, "people": people},
        )
        timings["people"] = time.perf_counter() - started

        first_id = conn.execute("SELECT min(id) FROM segments_person").fetchone()[0]
        started = time.perf_counter()
        chunk = 2_000_000
        for start in range(0, events, chunk):
            conn.execute(
                """
                INSERT INTO segments_event (person_id, anonymous_id, kind, name, data, timestamp,
                                            received_at, dedupe_key)
                SELECT %(first)s + (abs(hashint4(n)) %% %(people)s), NULL,
                       CASE WHEN n %% 10 = 0 THEN 'page' ELSE 'event' END,
                       (%(names)s::text[])[1 + n %% 10],
                       jsonb_build_object('value', n %% 1000, 'sku', 'sku-' || (n %% 500)),
                       now() - make_interval(secs => (abs(hashint4(n + 7)) %% 7776000)),
                       now(), 'g' || n
                FROM generate_series(%(start)s::int, %(end)s::int) AS n
                """,
                {"first": first_id, "people": people, "names": EVENT_NAMES,
                 "start": start + 1, "end": min(events, start + chunk)},
            )  # fmt: skip
        heavy = list(range(first_id, first_id + people, HEAVY_EVERY))
        conn.execute(
            """
            INSERT INTO segments_event (person_id, kind, name, data, timestamp, received_at, dedupe_key)
            SELECT p, 'event', (%(names)s::text[])[1 + n %% 10], '{}'::jsonb,
                   now() - make_interval(secs => n * 600), now(), 'h' || p || '-' || n
            FROM unnest(%(heavy)s::bigint[]) AS p, generate_series(1, %(count)s::int) AS n
            """,
            {"names": EVENT_NAMES, "heavy": heavy, "count": HEAVY_EVENTS},
        )
        timings["events"] = time.perf_counter() - started

        started = time.perf_counter()
        conn.execute(
            """
            INSERT INTO segments_activitysummary (person_id, name, count, first_at, last_at)
            SELECT person_id, name, count(*), min(timestamp), max(timestamp)
            FROM segments_event GROUP BY person_id, name
            """
        )
        conn.execute(
            """
            INSERT INTO segments_eventday (day, count)
            SELECT (timestamp AT TIME ZONE 'UTC')::date, count(*) FROM segments_event GROUP BY 1
            """
        )
        conn.execute("VACUUM ANALYZE segments_person")
        conn.execute("VACUUM ANALYZE segments_event")
        conn.execute("VACUUM ANALYZE segments_activitysummary")
        timings["summaries"] = time.perf_counter() - started
    return timings


def heavy_person_ids(database_url: str, schema: str) -> list[int]:
    with psycopg.connect(database_url) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        return [row[0] for row in conn.execute(
            "SELECT person_id FROM segments_activitysummary GROUP BY person_id "
            "HAVING sum(count) >= %s", [HEAVY_EVENTS])]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--people", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    options = parser.parse_args()
    url = os.environ["DATABASE_URL"]
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT schema_name FROM accounts_account WHERE slug = 'bench'"
        ).fetchone()
    if row is None:
        raise SystemExit("Create the account first: manage.py create_account bench …")
    timings = generate(url, row[0], options.people, options.events)
    print(f"| {'step':<10} | {'seconds':>8} |\n|{'-' * 12}|{'-' * 10}|")
    for step, seconds in timings.items():
        print(f"| {step:<10} | {seconds:>8.1f} |")


if __name__ == "__main__":
    main()
