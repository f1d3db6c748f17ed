"""Size and bloat per account schema, from PostgreSQL's statistics views, on every server.

One pass over `pg_stat_user_tables` grouped by schema: `pg_total_relation_size` (table,
indexes, TOAST) and the live and dead tuple estimates autovacuum itself works from. The
figures are estimates (they move with ANALYZE and autovacuum), which is what a staff view of
"who is big, who needs vacuum" needs; the cost at 1,000 accounts is in the README.
"""

from dataclasses import dataclass
from datetime import datetime

import psycopg
from django.core.cache import cache
from django.db import connection

from accounts.models import Account
from accounts.provisioning import server_url

CACHE_SECONDS = 60

BY_SCHEMA = """
SELECT s.schemaname, count(*), sum(pg_total_relation_size(s.relid))::bigint,
       sum(s.n_live_tup)::bigint, sum(s.n_dead_tup)::bigint,
       max(greatest(s.last_autovacuum, s.last_vacuum))
FROM pg_stat_user_tables AS s
WHERE s.schemaname = ANY(%s)
GROUP BY s.schemaname
"""
WORST_TABLES = """
SELECT s.schemaname, s.relname, s.n_live_tup, s.n_dead_tup,
       greatest(s.last_autovacuum, s.last_vacuum), s.autovacuum_count
FROM pg_stat_user_tables AS s
WHERE s.schemaname = ANY(%s) AND s.n_dead_tup > 0
ORDER BY s.n_dead_tup DESC LIMIT %s
"""


@dataclass(frozen=True)
class AccountStorage:
    slug: str
    server: str
    schema: str
    tables: int
    total_bytes: int
    live_rows: int
    dead_rows: int
    last_vacuum: datetime | None

    @property
    def dead_share(self) -> float:
        rows = self.live_rows + self.dead_rows
        return self.dead_rows / rows if rows else 0.0


@dataclass(frozen=True)
class TableBloat:
    slug: str
    table: str
    live_rows: int
    dead_rows: int
    last_vacuum: datetime | None
    autovacuum_count: int


@dataclass(frozen=True)
class StorageReport:
    accounts: list[AccountStorage]
    worst_tables: list[TableBloat]

    def largest(self, limit: int = 20) -> list[AccountStorage]:
        return sorted(self.accounts, key=lambda a: a.total_bytes, reverse=True)[:limit]

    def most_dead_rows(self, limit: int = 20) -> list[AccountStorage]:
        return sorted(self.accounts, key=lambda a: a.dead_rows, reverse=True)[:limit]

    @property
    def total_bytes(self) -> int:
        return sum(a.total_bytes for a in self.accounts)


def storage_report(tables: int = 20, fresh: bool = False) -> StorageReport:
    """Every account on every data server, measured at most once a minute."""
    key = "maintenance:storage-report"
    if not fresh and (report := cache.get(key)) is not None:
        return report
    by_server: dict[str, dict[str, str]] = {}
    rows = Account.objects.exclude(schema_name="public").values_list(
        "schema_name", "slug", "server"
    )
    for schema, slug, server in rows:
        by_server.setdefault(server, {})[schema] = slug
    accounts: list[AccountStorage] = []
    worst: list[TableBloat] = []
    for server, slugs in sorted(by_server.items()):
        if server == "default":
            _measure(connection.cursor(), server, slugs, tables, accounts, worst)
        else:
            # Accounts moved to another server are measured where they live.
            with psycopg.connect(server_url(server)) as conn:
                _measure(conn.cursor(), server, slugs, tables, accounts, worst)
    worst = sorted(worst, key=lambda t: t.dead_rows, reverse=True)[:tables]
    report = StorageReport(accounts, worst)
    cache.set(key, report, CACHE_SECONDS)
    return report


def _measure(
    cursor, server: str, slugs: dict[str, str], tables: int, accounts: list, worst: list
) -> None:
    with cursor:
        cursor.execute(BY_SCHEMA, [list(slugs)])
        accounts += [AccountStorage(slugs[row[0]], server, *row) for row in cursor.fetchall()]
        cursor.execute(WORST_TABLES, [list(slugs), tables])
        worst += [TableBloat(slugs[row[0]], *row[1:]) for row in cursor.fetchall()]
