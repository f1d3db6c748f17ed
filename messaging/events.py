"""What happened to a message after it left: opens, clicks, provider events, unsubscribes.

These arrive at the public side (pixel, click redirect, one-click unsubscribe, provider
webhooks, Customer.io's metrics API), are spooled like any ingested item, and are recorded
here by the drain inside its transaction for the account (ingest/apply.py calls
`record_items`). Spooled items:

    {"op": "delivery_event", "delivery": id | "<message-id>", "event": kind, "at": unix seconds,
     "detail": {...}, "dedupe": key}
    {"op": "unsubscribe", "delivery": id, "topic": id | None, "at": unix seconds, "dedupe": key}

Each event is inserted with its dedupe key first; only the ones that were new change a
delivery, so a replayed batch or a webhook sent twice counts once.
"""

import logging
import uuid
from collections import Counter
from datetime import UTC, datetime

import orjson
from django.db import connection
from django.db.models import F

from messaging.models import FIRST_AT, Broadcast, Delivery, DeliveryEvent
from messaging.sending import count_hour

log = logging.getLogger(__name__)

OPS = frozenset({"delivery_event", "unsubscribe"})
Kind = DeliveryEvent.Kind

# Bounces and complaints keep the address from being sent to again.
SUPPRESS = {Kind.BOUNCED, Kind.SPAMMED}
RECORDABLE = {kind.value for kind in Kind} - {Kind.QUEUED, Kind.SKIPPED}


def new_dedupe_key() -> str:
    return uuid.uuid4().hex


def event_item(delivery: int | str, kind: str, at: float, detail: dict, dedupe: str = "") -> dict:
    return {
        "op": "delivery_event",
        "delivery": delivery,
        "event": kind,
        "at": at,
        "detail": detail,
        "dedupe": dedupe or new_dedupe_key(),
    }


def unsubscribe_item(delivery: int, topic: int | None, at: float, source: str) -> dict:
    return {
        "op": "unsubscribe",
        "delivery": delivery,
        "topic": topic,
        "at": at,
        "source": source,
        "dedupe": new_dedupe_key(),
    }


def record_items(items: list[dict]) -> set[int]:
    """Record spooled messaging items (the connection is on the account, in the drain's
    transaction). Returns the ids of people whose subscription changed."""
    deliveries = find_deliveries(items)
    rows = []
    for item in items:
        delivery = deliveries.get(item["delivery"])
        if delivery is None:
            log.info("messaging item for an unknown delivery %r skipped", item["delivery"])
            continue
        kind = Kind.UNSUBSCRIBED if item["op"] == "unsubscribe" else item["event"]
        if kind not in RECORDABLE:
            continue
        detail = dict(item.get("detail") or {})
        if item["op"] == "unsubscribe":
            detail = {"source": item.get("source", "link"), "topic": item.get("topic")}
        at = datetime.fromtimestamp(item["at"], UTC)
        rows.append((delivery, kind, at, detail, f"{item['op']}:{item['dedupe']}", item))
    new = insert_events(rows)
    touched_people: set[int] = set()
    counters: dict[int, Counter] = {}
    changed: dict[int, Delivery] = {}
    for delivery, kind, at, detail, dedupe, item in rows:
        if dedupe not in new:
            continue
        first = delivery.record(kind, at)
        changed[delivery.pk] = delivery
        if first and delivery.broadcast_id and not delivery.is_test:
            counters.setdefault(delivery.broadcast_id, Counter())[kind] += 1
            count_hour(delivery.broadcast_id, kind, at, 1)
        if kind in SUPPRESS:
            suppress(delivery.email, f"{kind} ({detail.get('source', '')})")
        if kind == Kind.UNSUBSCRIBED and delivery.person_id:
            unsubscribe_person(delivery.person_id, item.get("topic"), at)
            touched_people.add(delivery.person_id)
    if changed:
        Delivery.objects.bulk_update(
            changed.values(), ["state", *FIRST_AT.values()], batch_size=1000
        )
    for broadcast_id, counts in counters.items():
        Broadcast.objects.filter(pk=broadcast_id).update(
            **{kind: F(kind) + count for kind, count in counts.items() if kind in FIRST_AT}
        )
    return touched_people


def find_deliveries(items: list[dict]) -> dict[int | str, Delivery]:
    ids = {item["delivery"] for item in items if isinstance(item["delivery"], int)}
    message_ids = {item["delivery"] for item in items if isinstance(item["delivery"], str)}
    found: dict[int | str, Delivery] = {}
    for delivery in Delivery.objects.filter(pk__in=ids):
        found[delivery.pk] = delivery
    for delivery in Delivery.objects.filter(message_id__in=message_ids):
        found[delivery.message_id] = found.setdefault(delivery.pk, delivery)
    return found


def insert_events(rows: list[tuple]) -> set[str]:
    """Insert the events; the dedupe keys of those that were not there before."""
    if not rows:
        return set()
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO messaging_deliveryevent
                (delivery_id, person_id, broadcast_id, kind, at, detail, dedupe_key)
            SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::text[],
                                 %s::timestamptz[], %s::jsonb[], %s::text[])
            ON CONFLICT (dedupe_key) DO NOTHING
            RETURNING dedupe_key
            """,
            [
                [row[0].pk for row in rows],
                [row[0].person_id for row in rows],
                [row[0].broadcast_id for row in rows],
                [row[1] for row in rows],
                [row[2] for row in rows],
                [orjson.dumps(row[3]).decode() for row in rows],
                [row[4] for row in rows],
            ],
        )
        return {row[0] for row in cursor.fetchall()}


def suppress(email: str, reason: str) -> None:
    if not email:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO segments_suppression (kind, value, created_at, created_by)
            VALUES ('email', %s, now(), %s) ON CONFLICT (kind, value) DO NOTHING
            """,
            [email.lower(), f"messaging: {reason}"[:254]],
        )


def unsubscribe_person(person_id: int, topic: int | None, at: datetime) -> None:
    """From one topic, or from everything (the `unsubscribed` attribute, as Customer.io
    keeps it, with its change time so an older identify cannot undo it)."""
    with connection.cursor() as cursor:
        if topic:
            cursor.execute(
                """
                INSERT INTO messaging_topicoptout (person_id, topic_id, at)
                SELECT %s, id, %s FROM messaging_topic WHERE id = %s
                ON CONFLICT DO NOTHING
                """,
                [person_id, at, topic],
            )
            return
        cursor.execute(
            """
            UPDATE segments_person SET unsubscribed = true,
                attributes = attributes || '{"unsubscribed": true}'::jsonb,
                attribute_times = attribute_times || jsonb_build_object('unsubscribed', %s::float8),
                updated_at = now()
            WHERE id = %s
              AND coalesce((attribute_times->>'unsubscribed')::float8, 0) <= %s::float8
            """,
            [at.timestamp(), person_id, at.timestamp()],
        )
