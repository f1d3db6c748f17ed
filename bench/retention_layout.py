"""Why retention deletes in batches instead of dropping time partitions, in figures.

Part 1, the catalog at N account schemas (default 1,000): each schema gets Ferry's three
retention tables (events, deliveries, delivery events, copied from a migrated account with
`LIKE … INCLUDING ALL`), either plain or partitioned by month (13 partitions each: a year's
retention plus the month being written). Reported: relations in pg_class, catalog size, files
on disk, time to create, and the planning time of a profile's timeline query in one schema
from a fresh connection (what every new backend pays per table it touches).

Part 2, removing old data from one account (default 2,000,000 events over 90 days, keeping
45): index-ordered batches as maintenance/retention.py runs them (without the governor's
sleeps), one big DELETE (what the 2015 team did), and dropping the partitions that hold only
older months. Reported: seconds, rows per second, the longest single transaction and WAL.

    python3 -m uv run python bench/retention_layout.py [--schemas 1000] [--events 2000000]
"""

import argparse
import os
import sys
import time
from pathlib import Path

import psycopg

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from bench._cluster import ferry_database  # noqa: E402
from bench.generate_account import generate  # noqa: E402

TABLES = {  # table: the time column a partitioned layout would split it by
    "segments_event": "timestamp",
    "messaging_delivery": "created_at",
    "messaging_deliveryevent": "at",
}
MONTHS = 13
TIMELINE = (
    "EXPLAIN (ANALYZE, FORMAT JSON) SELECT * FROM segments_event WHERE person_id = 42 "
    "ORDER BY timestamp DESC LIMIT 50"
)


def partitioned_ddl(schema: str, source: str, table: str, column: str) -> list[str]:
    # PostgreSQL wants the partition key in every unique index: the primary key and the
    # dedupe key become unique per (key, time), which is no longer what the drain relies on.
    statements = [
        f'CREATE TABLE "{schema}".{table} (LIKE "{source}".{table} INCLUDING DEFAULTS) '
        f"PARTITION BY RANGE ({column})",
        f'ALTER TABLE "{schema}".{table} ADD PRIMARY KEY (id, {column})',
    ]
    indexes = {  # (unique, columns): Ferry's indexes, with the time column where unique
        "segments_event": [
            (True, "(dedupe_key, timestamp)"), (False, "(person_id, timestamp DESC)"),
            (False, "(name, timestamp)"), (False, "(anonymous_id) WHERE person_id IS NULL"),
        ],
        "messaging_delivery": [
            (True, "(message_id, created_at)"), (True, "(broadcast_id, person_id, created_at)"),
            (False, "(person_id, id DESC)"), (False, "(state, id DESC)"),
            (False, "(broadcast_id, id DESC)"), (False, "(broadcast_id, state, id)"),
            (False, "(created_at)"),
        ],
        "messaging_deliveryevent": [
            (True, "(dedupe_key, at)"), (False, "(delivery_id, at)"),
            (False, "(person_id, kind, at)"), (False, "(kind, at)"), (False, "(at)"),
        ],
    }[table]  # fmt: skip
    for unique, columns in indexes:
        kind = "UNIQUE INDEX" if unique else "INDEX"
        statements.append(f'CREATE {kind} ON "{schema}".{table} {columns}')
    for month in range(MONTHS):
        statements.append(
            f'CREATE TABLE "{schema}".{table}_m{month} PARTITION OF "{schema}".{table} '
            f"FOR VALUES FROM ('2026-01-01'::timestamptz + interval '{month} month') "
            f"TO ('2026-01-01'::timestamptz + interval '{month + 1} month')"
        )
    return statements


def catalog(url: str) -> dict[str, float]:
    with psycopg.connect(url) as conn:
        relations = conn.execute("SELECT count(*) FROM pg_class").fetchone()[0]
        size = conn.execute(
            "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'pg_catalog' AND c.relkind = 'r'"
        ).fetchone()[0]
        data_dir = conn.execute("SHOW data_directory").fetchone()[0]
        database = conn.execute(
            "SELECT oid FROM pg_database WHERE datname = current_database()"
        ).fetchone()[0]
    files = len(os.listdir(Path(data_dir) / "base" / str(database)))
    return {"relations": relations, "catalog_mb": size / 2**20, "files": files}


def planning_ms(url: str, schema: str) -> float:
    """Planning time of the timeline query in a brand-new connection (cold relcache)."""
    with psycopg.connect(url) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        plan = conn.execute(TIMELINE).fetchone()[0][0]
    return plan["Planning Time"]


def build_schemas(url: str, source: str, count: int, layout: str) -> float:
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        for n in range(count):
            schema = f"{layout}_{n:04d}"
            with conn.transaction():
                conn.execute(f'CREATE SCHEMA "{schema}"')
                for table, column in TABLES.items():
                    if layout == "plain":
                        conn.execute(
                            f'CREATE TABLE "{schema}".{table} '
                            f'(LIKE "{source}".{table} INCLUDING ALL)'
                        )
                    else:
                        for statement in partitioned_ddl(schema, source, table, column):
                            conn.execute(statement)
    return time.perf_counter() - started


def drop_schemas(url: str, layout: str, count: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for n in range(count):
            conn.execute(f'DROP SCHEMA "{layout}_{n:04d}" CASCADE')


def part_catalog(url: str, source: str, schemas: int) -> list[tuple]:
    rows = []
    baseline = catalog(url)
    rows.append(("baseline: one migrated account", baseline, 0.0, planning_ms(url, source)))
    for layout in ("plain", "partitioned"):
        seconds = build_schemas(url, source, schemas, layout)
        figures = catalog(url)
        rows.append((f"{schemas:,} schemas, {layout}", figures, seconds,
                     planning_ms(url, f"{layout}_0000")))  # fmt: skip
        drop_schemas(url, layout, schemas)
    return rows


def wal_bytes(conn, since: str) -> int:
    return conn.execute("SELECT pg_current_wal_lsn() - %s::pg_lsn", [since]).fetchone()[0]


def restore(conn, cutoff) -> None:
    """The deleted events back, vacuumed, for the next way of deleting them."""
    conn.execute("INSERT INTO segments_event SELECT * FROM events_copy WHERE timestamp < %s",
                 [cutoff])  # fmt: skip
    conn.execute("VACUUM ANALYZE segments_event")


def part_deletes(url: str, schema: str, events: int, batch: int) -> list[tuple]:
    # The statements retention runs, read from the code itself (Django on the bench database).
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from maintenance.retention import DELETE_EVENTS, EVENT_NAMES

    rows = []
    generate(url, schema, people=max(10_000, events // 20), events=events)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        conn.execute("CREATE TABLE events_copy AS TABLE segments_event")
        cutoff = conn.execute("SELECT now() - interval '45 days'").fetchone()[0]
        old = conn.execute(
            "SELECT count(*) FROM segments_event WHERE timestamp < %s", [cutoff]
        ).fetchone()[0]

        # 1. Index-ordered batches, each its own short transaction: as retention runs them
        # (each batch starting where the last ended), and as it ran them before (each batch
        # from the start of the name's range, walking the entries of rows already deleted).
        names = [row[0] for row in conn.execute(EVENT_NAMES)]
        for label, keyset in (("each from the start", False), ("each where the last ended", True)):
            lsn = conn.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
            started, longest, deleted = time.perf_counter(), 0.0, 0
            for name in names:
                after = None
                while True:
                    one = time.perf_counter()
                    count, last = conn.execute(
                        DELETE_EVENTS, [name, cutoff, after if keyset else None, batch]
                    ).fetchone()
                    longest = max(longest, time.perf_counter() - one)
                    deleted += count
                    if count < batch:
                        break
                    after = last
            seconds = time.perf_counter() - started
            rows.append((f"batches of {batch:,} (index order), {label}", deleted, seconds,
                         longest, wal_bytes(conn, lsn)))  # fmt: skip
            restore(conn, cutoff)

        # 2. One DELETE for everything.
        lsn = conn.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
        started = time.perf_counter()
        count = conn.execute("DELETE FROM segments_event WHERE timestamp < %s", [cutoff]).rowcount
        seconds = time.perf_counter() - started
        rows.append(("one DELETE (2015 style)", count, seconds, seconds, wal_bytes(conn, lsn)))

        # 3. The same rows in monthly partitions: drop the ones wholly past the horizon.
        conn.execute("CREATE TABLE parted (LIKE events_copy) PARTITION BY RANGE (timestamp)")
        months = conn.execute(
            "SELECT date_trunc('month', min(timestamp)), date_trunc('month', max(timestamp)) "
            "FROM events_copy"
        ).fetchone()
        month, n = months[0], 0
        while month <= months[1]:
            conn.execute(
                f"CREATE TABLE parted_{n} PARTITION OF parted FOR VALUES FROM ('{month.isoformat()}') "
                f"TO ('{month.isoformat()}'::timestamptz + interval '1 month')"
            )
            month = conn.execute("SELECT %s::timestamptz + interval '1 month'", [month]).fetchone()[
                0
            ]
            n += 1
        conn.execute("INSERT INTO parted SELECT * FROM events_copy")
        conn.execute("CREATE INDEX ON parted (person_id, timestamp DESC)")
        conn.execute("CREATE INDEX ON parted (name, timestamp)")
        whole = conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'parted'::regclass ORDER BY c.relname"
        ).fetchall()
        lsn = conn.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
        started, dropped, longest = time.perf_counter(), 0, 0.0
        for (partition,) in whole:
            upper = conn.execute(f"SELECT max(timestamp) FROM {partition}").fetchone()[0]
            if upper is None or upper >= cutoff:
                continue
            count = conn.execute(f"SELECT count(*) FROM {partition}").fetchone()[0]
            one = time.perf_counter()
            conn.execute(f"ALTER TABLE parted DETACH PARTITION {partition}")
            conn.execute(f"DROP TABLE {partition}")
            longest = max(longest, time.perf_counter() - one)
            dropped += count
        seconds = time.perf_counter() - started
        rows.append(("drop whole monthly partitions", dropped, seconds, longest,
                     wal_bytes(conn, lsn)))  # fmt: skip
        rows.append(("(events older than the horizon)", old, 0.0, 0.0, 0))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--schemas", type=int, default=1000)
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--batch", type=int, default=5000)
    options = parser.parse_args()
    with ferry_database() as (_folder, url, account):
        catalog_rows = part_catalog(url, account["schema"], options.schemas)
        print(catalog_rows, file=sys.stderr, flush=True)
        delete_rows = part_deletes(url, account["schema"], options.events, options.batch)
    print("| layout | relations | catalog MB | files | create s | timeline planning ms |")
    print("|---|---|---|---|---|---|")
    for name, figures, seconds, planning in catalog_rows:
        print(f"| {name} | {figures['relations']:,} | {figures['catalog_mb']:.1f} | "
              f"{figures['files']:,} | {seconds:.1f} | {planning:.2f} |")  # fmt: skip
    print()
    print("| removing old events | rows | seconds | rows/s | longest transaction s | WAL MB |")
    print("|---|---|---|---|---|---|")
    for name, count, seconds, longest, wal in delete_rows:
        rate = f"{count / seconds:,.0f}" if seconds else ""
        print(f"| {name} | {count:,} | {seconds:.1f} | {rate} | {longest:.2f} | "
              f"{wal / 2**20:.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
