"""The delivery log at 10,000,000 deliveries, through the real HTTP stack (gunicorn), with
p50/p95 and queries per page beside a static file and an empty dashboard page (topics) served
in the same run.

The generator fills one account inside PostgreSQL (generate_series, like generate_account.py):
1,000,000 people, 50 broadcasts of 200,000 deliveries over 90 days with a realistic spread of
states and first-reached times, and the events of the newest broadcast. The delivery indexes
are dropped for the load and rebuilt from their own definitions afterwards.

    python3 -m uv run python bench/messaging_deliveries.py [--deliveries 10000000]
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psycopg

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from bench._cluster import ferry_database  # noqa: E402
from bench.people_pages import THREADS, queries_per_page, signed_in_cookie, timed  # noqa: E402

PEOPLE = 1_000_000
BROADCASTS = 50
# Cumulative shares of the states, in thousandths.
STATES = [
    ("sent", 550), ("delivered", 750), ("opened", 900), ("clicked", 950), ("bounced", 970),
    ("spammed", 971), ("unsubscribed", 976), ("failed", 980), ("skipped", 1000),
]  # fmt: skip


def state_sql() -> str:
    cases = " ".join(f"WHEN n %% 1000 < {limit} THEN '{state}'" for state, limit in STATES)
    return f"CASE {cases} END"


def generate(url: str, schema: str, deliveries: int) -> dict[str, float]:
    timings: dict[str, float] = {}
    per_broadcast = deliveries // BROADCASTS
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        conn.execute("SET maintenance_work_mem = '512MB'")
        conn.execute("SET synchronous_commit = off")
        conn.execute("SET session_replication_role = replica")
        started = time.perf_counter()
        conn.execute(
            """
            INSERT INTO segments_person (customer_id, email, attributes, attribute_times,
                unsubscribed, created_at, updated_at)
            SELECT 'c' || n, 'user' || n || '@example.com',
                   jsonb_build_object('first_name', 'Name' || n), '{}', false, now(), now()
            FROM generate_series(1, %s) AS n
            """,
            [PEOPLE],
        )
        first_person = conn.execute("SELECT min(id) FROM segments_person").fetchone()[0]
        conn.execute(
            """
            INSERT INTO messaging_broadcast (name, subject, from_email, reply_to, body_format,
                body, text_body, state, send_at, started_at, finished_at, created_by,
                created_at, updated_at, recipients, skipped, sent, delivered, opened, clicked,
                bounced, spammed, failed, unsubscribed)
            SELECT 'Broadcast ' || b, 'Hello {{ customer.first_name }}', 'news@example.com', '',
                   'markdown', 'Hi **{{ customer.first_name }}**', '', 'sent',
                   timestamptz '2026-08-01' + make_interval(hours => b * 43),
                   timestamptz '2026-08-01' + make_interval(hours => b * 43),
                   timestamptz '2026-08-01' + make_interval(hours => b * 43 + 1), '',
                   now(), now(), %s, 0, %s, 0, 0, 0, 0, 0, 0, 0
            FROM generate_series(0, %s) AS b
            """,
            [per_broadcast, per_broadcast, BROADCASTS - 1],
        )
        broadcasts = [row[0] for row in conn.execute(
            "SELECT id FROM messaging_broadcast ORDER BY id")]  # fmt: skip
        timings["people and broadcasts"] = time.perf_counter() - started

        indexes = conn.execute(
            """
            SELECT indexname, indexdef FROM pg_indexes
            WHERE schemaname = %s AND tablename = 'messaging_delivery'
              AND indexname NOT LIKE '%%pkey'
            """,
            [schema],
        ).fetchall()
        constraints = conn.execute(
            """
            SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
            WHERE conrelid = 'messaging_delivery'::regclass AND contype = 'u'
            """
        ).fetchall()
        for name, _ in constraints:
            conn.execute(f'ALTER TABLE messaging_delivery DROP CONSTRAINT "{name}"')
        for name, _ in indexes:
            conn.execute(f'DROP INDEX IF EXISTS "{name}"')

        started = time.perf_counter()
        for b, broadcast_id in enumerate(broadcasts):
            # Ids grow with created_at, as they do when the sender queues.
            conn.execute(
                f"""
                INSERT INTO messaging_delivery (broadcast_id, person_id, email, state, reason,
                    message_id, is_test, "values", created_at, claimed_at, sent_at, delivered_at,
                    opened_at, clicked_at, bounced_at, spammed_at, failed_at, unsubscribed_at)
                SELECT %(broadcast)s, %(first)s + n %% {PEOPLE},
                       'user' || (1 + n %% {PEOPLE}) || '@example.com', s.state,
                       CASE WHEN s.state = 'skipped' THEN 'unsubscribed' ELSE '' END,
                       CASE WHEN s.state = 'skipped' THEN NULL
                            ELSE '<' || n || '.1.' || md5(n::text) || '@ferry.bench>' END,
                       false, NULL, q.at, q.at, sent.at,
                       CASE WHEN s.state IN ('delivered', 'opened', 'clicked', 'unsubscribed')
                            THEN sent.at + interval '2 seconds' END,
                       CASE WHEN s.state IN ('opened', 'clicked', 'unsubscribed')
                            THEN sent.at + make_interval(secs => n %% 20000) END,
                       CASE WHEN s.state = 'clicked'
                            THEN sent.at + make_interval(secs => n %% 20000 + 60) END,
                       CASE WHEN s.state = 'bounced' THEN sent.at + interval '3 seconds' END,
                       CASE WHEN s.state = 'spammed' THEN sent.at + interval '1 hour' END,
                       CASE WHEN s.state = 'failed' THEN sent.at END,
                       CASE WHEN s.state = 'unsubscribed' THEN sent.at + interval '2 hours' END
                FROM generate_series(%(start)s::bigint, %(end)s::bigint) AS n,
                     LATERAL (SELECT {state_sql()} AS state) AS s,
                     LATERAL (SELECT timestamptz '2026-08-01'
                                 + make_interval(hours => %(b)s * 43)
                                 + make_interval(secs => (n - %(start)s) * 0.005) AS at) AS q,
                     LATERAL (SELECT CASE WHEN s.state = 'skipped' THEN NULL
                                          ELSE q.at + interval '30 seconds' END AS at) AS sent
                """,
                {"broadcast": broadcast_id, "first": first_person, "b": b,
                 "start": b * per_broadcast, "end": (b + 1) * per_broadcast - 1},
            )  # fmt: skip
        timings["deliveries"] = time.perf_counter() - started

        started = time.perf_counter()
        for name, definition in constraints:
            conn.execute(f'ALTER TABLE messaging_delivery ADD CONSTRAINT "{name}" {definition}')
        constraint_names = {name for name, _ in constraints}
        for name, definition in indexes:
            if name not in constraint_names:
                conn.execute(definition)
        timings["indexes"] = time.perf_counter() - started

        started = time.perf_counter()
        newest = broadcasts[-1]
        for kind, column in (("sent", "sent_at"), ("delivered", "delivered_at"),
                             ("opened", "opened_at"), ("clicked", "clicked_at")):  # fmt: skip
            conn.execute(
                f"""
                INSERT INTO messaging_deliveryevent (delivery_id, person_id, broadcast_id, kind,
                    at, detail)
                SELECT id, person_id, broadcast_id, %s, {column}, '{{"source": "bench"}}'
                FROM messaging_delivery WHERE broadcast_id = %s AND {column} IS NOT NULL
                """,
                [kind, newest],
            )
        conn.execute("VACUUM ANALYZE messaging_delivery")
        conn.execute("VACUUM ANALYZE messaging_deliveryevent")
        conn.execute("ANALYZE segments_person")
        timings["events and analyze"] = time.perf_counter() - started
    return timings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deliveries", type=int, default=10_000_000)
    options = parser.parse_args()
    with ferry_database() as (folder, url, account_info):
        timings = generate(url, account_info["schema"], options.deliveries)
        os.environ.update({
            "DATABASE_URL": url, "FERRY_VAR_DIR": str(folder / "var"), "LOG_LEVEL": "WARNING",
            "DJANGO_SETTINGS_MODULE": "config.settings",
        })  # fmt: skip
        import django

        django.setup()
        from django.core import signing
        from django.core.management import call_command

        from accounts.models import Account, User
        from messaging.models import Broadcast, Delivery
        from messaging.views import CURSOR_SALT

        call_command("collectstatic", interactive=False, verbosity=0)
        account = Account.objects.get(slug="bench")
        cookie = signed_in_cookie(account)
        with account:
            user = User.objects.get()
            broadcasts = list(Broadcast.objects.order_by("id").values_list("id", flat=True))
            middle = Delivery.objects.order_by("-id").values_list("id", flat=True)[
                options.deliveries // 2
            ]
            newest = Delivery.objects.filter(broadcast_id=broadcasts[-1]).order_by("-id").first()
        deep = signing.dumps(middle, salt=CURSOR_SALT)
        pages = [
            ("log, newest first", "/deliveries/"),
            ("log, page 100,000 (cursor)", f"/deliveries/?after={deep}"),
            ("state: opened (common)", "/deliveries/?state=opened"),
            ("state: spammed (rare)", "/deliveries/?state=spammed"),
            ("broadcast: the oldest", f"/deliveries/?broadcast={broadcasts[0]}"),
            ("broadcast + state: bounced", f"/deliveries/?broadcast={broadcasts[0]}&state=bounced"),
            ("person (email)", "/deliveries/?person=user500000@example.com"),
            ("date range: one day in August", "/deliveries/?since=2026-08-10&until=2026-08-10"),
            ("date + state: clicked", "/deliveries/?since=2026-08-10&until=2026-08-12&state=clicked"),
            ("a delivery's page", f"/deliveries/{newest.pk}/"),
            ("a broadcast's page", f"/broadcasts/{broadcasts[-1]}/"),
            # The floor every dashboard page pays (tenant, session, user, layout): no rows.
            ("reference: topics page (empty)", "/topics/"),
        ]  # fmt: skip
        counts = queries_per_page(account, user, [path for _, path in pages])
        port = 19500 + os.getpid() % 400
        web = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{port}",
             "--workers", "2", "--log-level", "warning"], cwd=BASE_DIR, env=os.environ.copy(),
        )  # fmt: skip
        try:
            time.sleep(3)
            host = f"bench.localhost:{port}"
            results = [
                ("static file (baseline)", "", timed(port, host, "/static/img/ferry.svg", ""))
            ]
            for label, path in pages:
                timed(port, host, path, cookie)  # warm, as a busy server is
                results.append((label, path, timed(port, host, path, cookie)))
        finally:
            web.terminate()
            web.wait()

    print(f"\nDelivery pages at {options.deliveries:,} deliveries; 200 requests each, "
          f"{THREADS} at a time\n")  # fmt: skip
    print("| step | seconds |\n|---|---:|")
    for step, seconds in timings.items():
        print(f"| {step} | {seconds:.0f} |")
    static_p95 = statistics.quantiles(results[0][2], n=20)[18]
    print(f"\n| {'page':<34} | {'p50 ms':>7} | {'p95 ms':>7} | x static p95 | queries |")
    print(f"|{'-' * 36}|{'-' * 9}|{'-' * 9}|{'-' * 14}|{'-' * 9}|")
    for label, path, durations in results:
        p95 = statistics.quantiles(durations, n=20)[18]
        print(
            f"| {label:<34} | {statistics.median(durations):>7.1f} | {p95:>7.1f} "
            f"| {p95 / static_p95:>12.1f} | {counts.get(path, 0):>7} |"
        )


if __name__ == "__main__":
    main()
