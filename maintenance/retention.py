"""Retention cleanup: old events, deliveries and dead letters removed in small, paced batches.

Layout decision (the figures are in the README, `bench/retention_layout.py`): events and
deliveries stay plain tables and cleanup deletes in index-ordered batches, not by dropping
time partitions. Partitions would make each drop cheap, but at 1,000 account schemas every
monthly partition of every partitioned table multiplies the catalog (a table, its indexes,
its TOAST table: about 7 relations, and 3 files each) and the planning of every event query,
and PostgreSQL requires the partition key in every unique index, which would turn the drain's
`dedupe_key` uniqueness (ingest/apply.py) into uniqueness per month. Batches need no schema
change: each is one short transaction that walks an index the tables already have
(`event_name_time_person`, one name at a time; `delivery_created`) and removes at most
`RETENTION_BATCH_SIZE` rows, under a governor slot that pauses while the drain is behind.

What the horizon means: an account that keeps events N days holds every event whose
timestamp is at most N days old (plus up to an hour's grace, see MARGIN) and none much older.
Activity summaries are all-time aggregates and are not reduced when events go; segment
windows ("within the last D days") are accepted only for D up to N, so they always see every
event they ask about (segments/rules.py). The drain does not store an event older than the
horizon (ingest/apply.py): its dedupe key is gone once the event is, so storing it again
would count a replay twice.

Vacuuming after a large deletion: autovacuum cleans `segments_event` at 2 % dead rows
(maintenance 0002), so deleting half of a 10,000,000-event account set off a vacuum, each a
pass over every index of the table, about every 200,000 rows: up to 25 passes, at normal
priority, outside the governor. Once a round has deleted `RETENTION_VACUUM_TAKEOVER_ROWS` from
a table, it turns autovacuum off for that table and vacuums it once itself when done, inside
its slot (so on the slot's lowered priority) and with autovacuum's cost throttling. The
setting is reset in a `finally`; a round killed in between leaves it off until that account's
next round, which resets it at its end whatever it deleted.
"""

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, OperationalError, connection, transaction

from accounts.models import Account, control_plane
from ingest.models import DeadLetter
from maintenance.governor import Slot
from maintenance.models import MaintenanceRun, RetentionPolicy
from segments.membership import Cause, graph_of, recompute, stored_rule
from segments.models import Segment
from segments.rules import EmailCondition, EventCondition, InvalidRule, Node, walk

log = logging.getLogger(__name__)

# An hour's grace past the horizon: an account never loses an event a few seconds early
# because a worker's clock runs ahead, and rounds do not chase single rows at the edge.
MARGIN = timedelta(hours=1)
RUN_HISTORY = timedelta(days=30)

EVENT_NAMES = """
WITH RECURSIVE names AS (
    (SELECT name FROM segments_event ORDER BY name LIMIT 1)
    UNION ALL
    SELECT (SELECT e.name FROM segments_event AS e WHERE e.name > names.name
            ORDER BY e.name LIMIT 1)
    FROM names WHERE names.name IS NOT NULL
)
SELECT name FROM names WHERE name IS NOT NULL
"""
# Each batch starts at the time the last one ended (the fourth parameter, null at first): the
# index entries of rows already deleted stay until vacuum, and walking them again from the
# start of the name's range made every batch slower than the one before it.
DELETE_EVENTS = """
WITH gone AS (
    DELETE FROM segments_event WHERE id IN (
        SELECT id FROM segments_event
        WHERE name = %s AND timestamp < %s AND timestamp >= coalesce(%s::timestamptz, '-infinity')
        ORDER BY timestamp LIMIT %s
    )
    RETURNING timestamp
)
SELECT count(*), max(timestamp) FROM gone
"""
# A delivery still queued or being sent is work in progress, not history.
DELETE_DELIVERIES = """
WITH gone AS (
    DELETE FROM messaging_delivery WHERE id IN (
        SELECT id FROM messaging_delivery
        WHERE created_at < %s AND created_at >= coalesce(%s::timestamptz, '-infinity')
          AND state NOT IN ('queued', 'sending')
        ORDER BY created_at LIMIT %s
    )
    RETURNING created_at
)
SELECT count(*), max(created_at) FROM gone
"""


@dataclass
class Cleaned:
    events: int = 0
    event_days: int = 0
    deliveries: int = 0
    dead_letters: int = 0
    segments_recomputed: int = 0

    def __iadd__(self, other: "Cleaned") -> "Cleaned":
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self


def horizon(days: int, now: datetime | None = None) -> datetime:
    """The oldest moment an account with `days` of retention still keeps."""
    return (now or datetime.now(UTC)) - timedelta(days=days)


def kept_days() -> dict[str, int]:
    """Days the current account keeps events and deliveries, for the segment editor."""
    account = getattr(connection, "tenant", None)
    if not isinstance(account, Account):
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT events_days, events_limit_days, deliveries_days, deliveries_limit_days "
            "FROM public.maintenance_retentionpolicy WHERE account_id = %s",
            [account.pk],
        )
        row = cursor.fetchone() or (None, None, None, None)
    policy = RetentionPolicy(
        events_days=row[0], events_limit_days=row[1],
        deliveries_days=row[2], deliveries_limit_days=row[3],
    )  # fmt: skip
    return {"events": policy.days("events"), "deliveries": policy.days("deliveries")}


def clean_account(account: Account, slot: Slot, now: datetime | None = None) -> Cleaned:
    """Everything past the account's horizons, in paced batches (the caller holds the slot)."""
    now = now or datetime.now(UTC)
    with control_plane():
        policy = RetentionPolicy.for_account(account)
    cleaned = Cleaned()
    with account:
        events_before = horizon(policy.days("events"), now) - MARGIN
        with vacuumed_after("segments_event", slot) as events:
            cleaned.events = delete_events(slot, events_before, events)
        cleaned.event_days = delete_event_days(events_before)
        if table_exists("messaging_delivery"):
            deliveries_before = horizon(policy.days("deliveries"), now) - MARGIN
            with vacuumed_after("messaging_delivery", slot) as deliveries:
                cleaned.deliveries = delete_in_batches(
                    slot, DELETE_DELIVERIES, [deliveries_before], deliveries
                )
        if cleaned.events or cleaned.deliveries:
            with slot.full_priority():  # under the drain's lock
                cleaned.segments_recomputed = recompute_history_readers()
    with control_plane():
        cleaned.dead_letters = delete_dead_letters(
            slot, account.pk, horizon(policy.days("dead_letters"), now)
        )
        policy.cleaned_at = now
        if policy.pk:
            policy.save(update_fields=["cleaned_at"])
        else:
            policy.save()
    return cleaned


class TableCleanup:
    """Rows a round deleted from one table, and whether it took over the table's vacuuming."""

    def __init__(self, table: str) -> None:
        self.table = table
        self.deleted = 0
        self.took_over = False

    def add(self, deleted: int) -> None:
        self.deleted += deleted
        if not self.took_over and self.deleted >= settings.RETENTION_VACUUM_TAKEOVER_ROWS:
            self.took_over = set_autovacuum(self.table, enabled=False)


@contextmanager
def vacuumed_after(table: str, slot: Slot) -> Iterator[TableCleanup]:
    """Deletes from `table` in the block; past the takeover size, one VACUUM at the end."""
    cleanup = TableCleanup(table)
    try:
        yield cleanup
        if cleanup.took_over:
            slot.wait_if_behind()
            started = time.monotonic()
            vacuum(table)
            log.info("vacuumed %s after %s deletions in %.1f s", table, cleanup.deleted,
                     time.monotonic() - started)  # fmt: skip
    finally:
        try:
            if cleanup.took_over or autovacuum_is_off(table):
                set_autovacuum(table, enabled=True)
        except DatabaseError as error:  # the server went away: the next round resets it
            log.warning("autovacuum of %s not reset: %s", table, error)


def set_autovacuum(table: str, *, enabled: bool) -> bool:
    """Turn autovacuum off (or back to the table's usual settings) for `table`; False if the
    table's lock could not be had promptly (a running anti-wraparound vacuum, say)."""
    change = "RESET (autovacuum_enabled)" if enabled else "SET (autovacuum_enabled = false)"
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL lock_timeout = '5s'")
            cursor.execute(f"ALTER TABLE {table} {change}")
    except OperationalError as error:
        log.warning("autovacuum setting of %s left as it was: %s", table, error)
        return False
    return True


def autovacuum_is_off(table: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 'autovacuum_enabled=false' = ANY(reloptions) FROM pg_class "
            "WHERE oid = to_regclass(%s)",
            [table],
        )
        row = cursor.fetchone()
    return bool(row and row[0])


def vacuum(table: str) -> None:
    """VACUUM (ANALYZE) throttled as autovacuum would be (a manual VACUUM is not, by default),
    and in this backend alone: parallel index workers would be new processes at the usual
    priority (the slot's lowered one is this backend's)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT set_config('vacuum_cost_delay', current_setting('autovacuum_vacuum_cost_delay'), false)"
        )
        try:
            cursor.execute(f"VACUUM (ANALYZE, PARALLEL 0) {table}")
        finally:
            cursor.execute("RESET vacuum_cost_delay")


def delete_events(slot: Slot, before: datetime, cleanup: TableCleanup) -> int:
    with connection.cursor() as cursor:
        cursor.execute(EVENT_NAMES)
        names = [row[0] for row in cursor.fetchall()]
    return sum(delete_in_batches(slot, DELETE_EVENTS, [name, before], cleanup) for name in names)


def delete_in_batches(slot: Slot, statement: str, params: list, cleanup: TableCleanup) -> int:
    """Run a `DELETE … LIMIT batch` until it removes less than a batch; each run is its own
    short transaction (autocommit), with the governor consulted before and after. The
    statement answers (rows deleted, the last one's time), and each run starts at that time.
    """
    size = settings.RETENTION_BATCH_SIZE
    total, after = 0, None
    while True:
        slot.wait_if_behind()
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement, [*params, after, size])
            deleted, last = cursor.fetchone()
        total += deleted
        cleanup.add(deleted)
        slot.pace(deleted)
        if deleted < size:
            return total
        after = last


def delete_event_days(before: datetime) -> int:
    # The chart's per-day counts: one row a day, so a single statement is small.
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM segments_eventday WHERE day < %s", [before.date()])
        return cursor.rowcount


def delete_dead_letters(slot: Slot, account_id: int | None, before: datetime) -> int:
    letters = DeadLetter.objects.filter(created_at__lt=before)
    letters = letters.filter(account_id=account_id) if account_id else letters
    total = 0
    size = settings.RETENTION_BATCH_SIZE
    while True:
        slot.wait_if_behind()
        ids = list(letters.order_by("created_at").values_list("pk", flat=True)[:size])
        deleted, _ = DeadLetter.objects.filter(pk__in=ids).delete()
        total += deleted
        slot.pace(deleted)
        if len(ids) < size:
            return total


def clean_control_plane(slot: Slot, now: datetime | None = None) -> Cleaned:
    """What belongs to no account: dead letters of deleted accounts (at once: the account's
    data is gone, so is this) and of unknown credentials (the default retention), and old
    governor history."""
    now = now or datetime.now(UTC)
    cleaned = Cleaned()
    with control_plane():
        existing = set(Account.objects.values_list("pk", flat=True))
        orphaned = set(
            DeadLetter.objects.exclude(account_id=None)
            .exclude(account_id__in=existing)
            .values_list("account_id", flat=True)
            .distinct()
        )
        for account_id in orphaned:
            cleaned.dead_letters += delete_dead_letters(slot, account_id, now + MARGIN)
        unknown = DeadLetter.objects.filter(
            account_id=None,
            created_at__lt=horizon(settings.RETENTION_DEFAULT_DAYS["dead_letters"], now),
        )
        cleaned.dead_letters += unknown.delete()[0]
        MaintenanceRun.objects.recent().filter(finished_at__lt=now - RUN_HISTORY).delete()
    return cleaned


def recompute_history_readers() -> int:
    """Segments whose count can drop when old rows go: event conditions with property
    filters or fixed dates (these read stored events; all-time counts without filters come
    from the summaries) and email conditions. Recomputed once after a round that deleted
    something, under the drain's lock, so memberships match what is kept."""
    segments = list(Segment.objects.rule_based())
    graph = graph_of(segments)
    readers = []
    for segment in segments:
        try:
            node = stored_rule(segment, graph)
        except InvalidRule:
            continue
        if any(reads_history(n) for n in walk(node)):
            readers.append(segment)
    for segment in readers:
        with transaction.atomic():
            recompute(segment, cause=Cause.SWEEP)
    return len(readers)


def reads_history(node: Node) -> bool:
    if isinstance(node, EmailCondition):
        return True
    if isinstance(node, EventCondition):
        return bool(node.filters) or bool(node.window and node.window.days is None)
    return False


def table_exists(name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
        return cursor.fetchone()[0]
