"""Sending broadcasts: queue the recipients once, then claim, send and record in batches.

1. Queue: one INSERT … SELECT turns the segment's members into deliveries, `queued` or
   `skipped` (no email, unsubscribed, suppressed, opted out of the topic), under a unique
   (broadcast, person) constraint: queueing twice adds nobody.
2. Claim: a batch of queued deliveries becomes `sending` with a Message-ID, committed before
   any SMTP conversation (`FOR UPDATE SKIP LOCKED`, so several senders share the work).
   People who unsubscribed since queueing are skipped here.
3. Send over a few reused SMTP connections (threads), then record the whole batch in one
   UPDATE, its `sent` events and the broadcast's counters. While a batch is being sent, the
   next one is claimed, so the database and the SMTP server work at the same time.

A recipient refused for now (4xx at RCPT TO) goes back to the queue until a retry time that
doubles with each refusal, and fails after MESSAGING_MAX_ATTEMPTS.

A sender that dies between 2 and 3 leaves claims behind. They are never sent again: after
`MESSAGING_CLAIM_TIMEOUT` they become `failed`, saying the message may or may not have left,
because sending twice is the worse mistake. At most two batches (the one being sent and the
one claimed next) are in that state.
"""

import logging
import smtplib
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

import orjson
from django.conf import settings
from django.core.mail import mailers
from django.db import DatabaseError, connection, transaction
from django.db.models import F
from django.utils import timezone

from config.metrics import count_emails_sent
from messaging import links
from messaging.mime import InvalidRecipient
from messaging.models import Broadcast, Delivery
from messaging.render import CompiledBroadcast, Recipient, build_message, compile_broadcast

log = logging.getLogger(__name__)

DELIVERY = "messaging_delivery"
EVENT = "messaging_deliveryevent"
PERSON = "segments_person"
MEMBERSHIP = "segments_membership"
SUPPRESSION = "segments_suppression"
OPT_OUT = "messaging_topicoptout"

# Why a recipient is skipped, in the order they are checked.
SKIP_REASON_SQL = f"""
CASE
    WHEN coalesce(p.email, '') = '' THEN 'no email address'
    WHEN p.unsubscribed THEN 'unsubscribed'
    WHEN EXISTS (
        SELECT 1 FROM {SUPPRESSION} s
        WHERE (s.kind = 'email' AND s.value = lower(p.email))
           OR (s.kind = 'id' AND s.value = p.customer_id)
    ) THEN 'suppressed'
    WHEN %(topic)s::bigint IS NOT NULL AND EXISTS (
        SELECT 1 FROM {OPT_OUT} o WHERE o.person_id = p.id AND o.topic_id = %(topic)s::bigint
    ) THEN 'opted out of the topic'
    ELSE ''
END
"""


def account_key() -> str:
    """The current account's id as the spool and the links name it."""
    return str(connection.tenant.pk)


def queue_recipients(broadcast: Broadcast, now: datetime) -> None:
    """Turn the segment's current members into deliveries; a second call adds nobody."""
    with transaction.atomic():
        locked = Broadcast.objects.select_for_update().get(pk=broadcast.pk)
        if locked.state != Broadcast.State.SCHEDULED:
            return
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                WITH recipients AS (
                    SELECT p.id, lower(coalesce(p.email, '')) AS email,
                           {SKIP_REASON_SQL} AS reason
                    FROM {MEMBERSHIP} m JOIN {PERSON} p ON p.id = m.person_id
                    WHERE m.segment_id = %(segment)s
                    ORDER BY p.id
                ), inserted AS (
                    INSERT INTO {DELIVERY} (broadcast_id, person_id, email, state, reason,
                                            is_test, created_at)
                    SELECT %(broadcast)s, id, email,
                           CASE WHEN reason = '' THEN 'queued' ELSE 'skipped' END, reason,
                           false, %(now)s
                    FROM recipients
                    ON CONFLICT (broadcast_id, person_id) DO NOTHING
                    RETURNING id, person_id, state, reason
                ), skipped_events AS (
                    INSERT INTO {EVENT} (delivery_id, person_id, broadcast_id, kind, at, detail)
                    SELECT id, person_id, %(broadcast)s, 'skipped', %(now)s,
                           jsonb_build_object('source', 'sender', 'reason', reason)
                    FROM inserted WHERE state = 'skipped'
                )
                SELECT count(*) FILTER (WHERE state = 'queued'),
                       count(*) FILTER (WHERE state = 'skipped')
                FROM inserted
                """,
                {
                    "segment": locked.segment_id or 0,
                    "broadcast": locked.pk,
                    "now": now,
                    "topic": locked.topic_id,
                },
            )
            queued, skipped = cursor.fetchone()
        locked.state = Broadcast.State.SENDING
        locked.started_at = now
        locked.recipients = F("recipients") + queued + skipped
        locked.skipped = F("skipped") + skipped
        locked.save(update_fields=["state", "started_at", "recipients", "skipped"])
        if skipped:
            count_hour(locked.pk, "skipped", now, skipped)


@dataclass
class Claimed:
    id: int
    person_id: int | None
    email: str
    message_id: str
    customer_id: str | None
    attributes: dict
    skip_reason: str


def claim(broadcast: Broadcast, limit: int, now: datetime) -> list[Claimed]:
    """Mark up to `limit` queued deliveries as being sent, with their Message-IDs, and
    commit that before anything is sent."""
    account = account_key()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT d.id FROM {DELIVERY} d
            WHERE d.broadcast_id = %s AND d.state = 'queued'
              AND (d.retry_at IS NULL OR d.retry_at <= %s)
            ORDER BY d.id LIMIT %s FOR UPDATE SKIP LOCKED
            """,
            [broadcast.pk, now, limit],
        )
        ids = [row[0] for row in cursor.fetchall()]
        if not ids:
            return []
        message_ids = [links.new_message_id(i, account) for i in ids]
        cursor.execute(
            f"""
            WITH claimed AS (
                UPDATE {DELIVERY} d SET state = 'sending', claimed_at = %(now)s,
                    message_id = c.message_id
                FROM unnest(%(ids)s::bigint[], %(message_ids)s::text[]) AS c(id, message_id)
                WHERE d.id = c.id
                RETURNING d.id, d.person_id, d.email, d.message_id
            )
            SELECT c.id, c.person_id, c.email, c.message_id, p.customer_id, p.attributes,
                   {SKIP_REASON_SQL.replace("p.email", "c.email")} AS reason
            FROM claimed c LEFT JOIN {PERSON} p ON p.id = c.person_id
            ORDER BY c.id
            """,
            {"now": now, "ids": ids, "message_ids": message_ids, "topic": broadcast.topic_id},
        )
        rows = cursor.fetchall()
    # Django reads jsonb as text on raw cursors.
    return [
        Claimed(*row[:5], orjson.loads(row[5]) if isinstance(row[5], str) else row[5], row[6])
        for row in rows
    ]


# An outcome, not a state: the delivery goes back to `queued` until its retry time (or fails
# after MESSAGING_MAX_ATTEMPTS), with a `deferred` event in its timeline.
DEFERRED = "deferred"


@dataclass
class Outcome:
    id: int
    state: str
    reason: str = ""
    values: dict | None = None


class ConnectionBroke(Exception):
    def __init__(self, outcomes: list[Outcome], unsent: list[Claimed]) -> None:
        super().__init__(f"SMTP connection broke with {len(unsent)} messages unsent")
        self.outcomes, self.unsent = outcomes, unsent


def send_claimed(compiled: CompiledBroadcast, claimed: list[Claimed], mailer) -> list[Outcome]:
    outcomes: list[Outcome] = []
    for index, item in enumerate(claimed):
        if item.skip_reason:
            outcomes.append(Outcome(item.id, Delivery.State.SKIPPED, item.skip_reason))
            continue
        recipient = Recipient(
            compiled.account,
            item.id,
            item.email,
            {**(item.attributes or {}), "email": item.email, "id": item.customer_id or ""},
        )
        try:
            message = build_message(compiled, recipient, item.message_id, connection=mailer)
        except InvalidRecipient as error:
            outcomes.append(Outcome(item.id, Delivery.State.FAILED, str(error)[:500]))
            continue
        try:
            mailer.send_messages([message])
        except (
            smtplib.SMTPRecipientsRefused,
            smtplib.SMTPSenderRefused,
            smtplib.SMTPDataError,
        ) as error:
            if isinstance(error, smtplib.SMTPResponseException) and error.smtp_code < 500:
                raise ConnectionBroke(outcomes, claimed[index:]) from error
            if isinstance(error, smtplib.SMTPRecipientsRefused) and all(
                code < 500 for code, _reply in error.recipients.values()
            ):
                # Refused for now (greylisting, a full mailbox): tried again later.
                outcomes.append(Outcome(item.id, DEFERRED, smtp_reason(error)))
                continue
            # The server refused this message for good; it did not leave.
            outcomes.append(Outcome(item.id, Delivery.State.FAILED, smtp_reason(error)))
            continue
        except (smtplib.SMTPException, OSError) as error:
            raise ConnectionBroke(outcomes, claimed[index:]) from error
        outcomes.append(Outcome(item.id, Delivery.State.SENT, values=recipient.recorded_values))
        count_emails_sent("broadcast")
    return outcomes


def start_sending(
    compiled: CompiledBroadcast, claimed: list[Claimed], connections: list, pool: ThreadPoolExecutor
) -> list[Future]:
    """A batch split over several SMTP connections, sent in the pool's threads: an SMTP
    conversation is mostly waiting for the server's replies, so a few connections multiply
    what one sender gets through, and the caller can use the database meanwhile."""
    count = len(connections)
    return [
        pool.submit(send_claimed, compiled, claimed[index::count], connection)
        for index, connection in enumerate(connections)
    ]


def outcomes_of(futures: list[Future]) -> list[Outcome]:
    """Wait for a batch started by `start_sending`; ConnectionBroke names what was not sent."""
    outcomes: list[Outcome] = []
    unsent: list[Claimed] = []
    for future in futures:
        try:
            outcomes += future.result()
        except ConnectionBroke as broke:
            outcomes += broke.outcomes
            unsent += broke.unsent
    if unsent:
        raise ConnectionBroke(outcomes, unsent)
    return outcomes


def smtp_reason(error: Exception) -> str:
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return "; ".join(
            f"{address}: {code} {reply.decode(errors='replace')}"
            for address, (code, reply) in error.recipients.items()
        )[:500]
    return f"{type(error).__name__}: {error}"[:500]


def record_outcomes(broadcast: Broadcast, outcomes: list[Outcome], now: datetime) -> None:
    """One UPDATE for the batch, its events, the broadcast's counters and hourly counts."""
    if not outcomes:
        return

    with transaction.atomic(), connection.cursor() as cursor:
        # A deferred message goes back to the queue until its retry time, which doubles with
        # each refusal, or fails once it has been refused MESSAGING_MAX_ATTEMPTS times.
        cursor.execute(
            f"""
            WITH outcome AS (
                SELECT o.*, d.attempts + 1 AS attempt,
                       CASE WHEN o.state <> 'deferred' THEN o.state
                            WHEN d.attempts + 1 >= %(max_attempts)s THEN 'failed'
                            ELSE 'queued' END AS new_state
                FROM unnest(%(ids)s::bigint[], %(states)s::text[], %(reasons)s::text[],
                            %(values)s::text[]) AS o(id, state, reason, values)
                JOIN {DELIVERY} d ON d.id = o.id
            ), done AS (
                UPDATE {DELIVERY} d SET state = o.new_state,
                    reason = CASE WHEN o.state = 'deferred' AND o.new_state = 'failed'
                        THEN left('refused ' || o.attempt || ' times, the last: ' || o.reason, 500)
                        ELSE o.reason END,
                    "values" = o.values::jsonb,
                    sent_at = CASE WHEN o.new_state = 'sent' THEN %(now)s END,
                    failed_at = CASE WHEN o.new_state = 'failed' THEN %(now)s END,
                    attempts = CASE WHEN o.state = 'deferred' THEN o.attempt ELSE d.attempts END,
                    retry_at = CASE WHEN o.new_state = 'queued' THEN %(now)s + least(
                        %(retry)s * power(2, o.attempt - 1), %(retry_max)s
                    ) * interval '1 second' END,
                    claimed_at = CASE WHEN o.new_state = 'queued' THEN NULL ELSE d.claimed_at END,
                    message_id = CASE WHEN o.new_state = 'queued' THEN NULL ELSE d.message_id END
                FROM outcome o
                WHERE d.id = o.id AND d.state = 'sending'
                RETURNING d.id, d.person_id, d.state, o.state AS outcome, d.reason
            ), events AS (
                INSERT INTO {EVENT} (delivery_id, person_id, broadcast_id, kind, at, detail)
                SELECT id, person_id, %(broadcast)s,
                       CASE WHEN state = 'queued' THEN 'deferred' ELSE state END, %(now)s,
                       jsonb_strip_nulls(jsonb_build_object(
                           'source', 'sender', 'reason', nullif(reason, '')))
                FROM done
            )
            SELECT state, count(*) FROM done WHERE state <> 'queued' GROUP BY state
            """,
            {
                "now": now,
                "broadcast": broadcast.pk,
                "ids": [o.id for o in outcomes],
                "states": [o.state for o in outcomes],
                "reasons": [o.reason for o in outcomes],
                "values": [orjson.dumps(o.values).decode() if o.values else None for o in outcomes],
                "max_attempts": settings.MESSAGING_MAX_ATTEMPTS,
                "retry": settings.MESSAGING_RETRY_SECONDS,
                "retry_max": settings.MESSAGING_RETRY_MAX_SECONDS,
            },
        )
        counts = {state: 0 for state in ("sent", "failed", "skipped")}
        counts.update(dict(cursor.fetchall()))
        Broadcast.objects.filter(pk=broadcast.pk).update(
            sent=F("sent") + counts["sent"],
            failed=F("failed") + counts["failed"],
            skipped=F("skipped") + counts["skipped"],
        )
        for kind, count in counts.items():
            if count:
                count_hour(broadcast.pk, kind, now, count)


def count_hour(broadcast_id: int, kind: str, at: datetime, count: int) -> None:
    hour = at.replace(minute=0, second=0, microsecond=0)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO messaging_broadcasthour AS h (broadcast_id, hour, kind, count)
            VALUES (%s, %s, %s, %s)
            ON CONFLICT (broadcast_id, hour, kind) DO UPDATE SET count = h.count + excluded.count
            """,
            [broadcast_id, hour, kind, count],
        )


def give_up_stale_claims(now: datetime) -> int:
    """Claims of a sender that died: failed, never sent again (see the module docstring)."""
    cutoff = now - timedelta(seconds=settings.MESSAGING_CLAIM_TIMEOUT)
    stale = list(
        Delivery.objects.filter(state=Delivery.State.SENDING, claimed_at__lt=cutoff)
        .values_list("pk", "broadcast_id")
        .order_by("pk")[:10_000]
    )
    by_broadcast: dict[int, list[Outcome]] = {}
    reason = (
        "the sender stopped while sending this batch; it may or may not have been sent, "
        "and is not sent again so that nobody gets it twice"
    )
    for pk, broadcast_id in stale:
        by_broadcast.setdefault(broadcast_id, []).append(Outcome(pk, Delivery.State.FAILED, reason))
    for broadcast_id, outcomes in by_broadcast.items():
        record_outcomes(Broadcast(pk=broadcast_id), outcomes, now)
    return len(stale)


def finish_if_done(broadcast: Broadcast, now: datetime) -> bool:
    with transaction.atomic():
        pending = Delivery.objects.filter(
            broadcast=broadcast, state__in=[Delivery.State.QUEUED, Delivery.State.SENDING]
        ).exists()
        if pending:
            return False
        Broadcast.objects.filter(pk=broadcast.pk, state=Broadcast.State.SENDING).update(
            state=Broadcast.State.SENT, finished_at=now
        )
        return True


class Throttle:
    """At most `rate` messages a second (0: no limit), smoothed over each batch."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.started = time.monotonic()
        self.sent = 0

    def wait(self, sent: int) -> None:
        self.sent += sent
        if self.rate <= 0:
            return
        ahead = self.sent / self.rate - (time.monotonic() - self.started)
        if ahead > 0:
            time.sleep(ahead)


def send_broadcast(
    broadcast: Broadcast,
    *,
    limit: int | None = None,
    batch_size: int | None = None,
    throttle: Throttle | None = None,
    stop=lambda: False,
) -> int:
    """Work on one due broadcast (the connection is on its account): queue it if it has not
    been, then send batches until it is done, `limit` messages went out, or `stop()`."""
    batch_size = batch_size or settings.MESSAGING_CLAIM_BATCH
    throttle = throttle or Throttle(settings.MESSAGING_SEND_RATE)
    if broadcast.state == Broadcast.State.SCHEDULED:
        queue_recipients(broadcast, timezone.now())
        broadcast.refresh_from_db()
    if broadcast.state != Broadcast.State.SENDING:
        return 0
    compiled = compile_broadcast(broadcast, account_key())
    handled = 0
    connections = [
        mailers["broadcasts"] for _ in range(max(1, settings.MESSAGING_SMTP_CONNECTIONS))
    ]
    pool = ThreadPoolExecutor(len(connections), thread_name_prefix="smtp")
    try:
        for smtp in connections:
            smtp.open()
        claimed = claim(broadcast, batch_size, timezone.now()) if not stop() else []
        while claimed:
            batch = start_sending(compiled, claimed, connections, pool)
            # While this batch is on the wire, claim the next one: it is committed before any
            # of it is sent, so a crash leaves at most two batches in doubt, never resent.
            claimed_next: list[Claimed] = []
            if not stop() and (limit is None or handled + len(claimed) < limit):
                claimed_next = claim(broadcast, batch_size, timezone.now())
            try:
                outcomes = outcomes_of(batch)
            except ConnectionBroke as broke:
                # What was sent is recorded; what was not answered goes back to the queue.
                unsent = broke.unsent + claimed_next
                log.warning("SMTP failed; %d messages queued again", len(unsent))
                record_outcomes(broadcast, broke.outcomes, timezone.now())
                release_unsent(unsent)
                raise
            record_outcomes(broadcast, outcomes, timezone.now())
            handled += len(outcomes)
            throttle.wait(sum(1 for o in outcomes if o.state == Delivery.State.SENT))
            claimed = claimed_next
    finally:
        pool.shutdown()
        for smtp in connections:
            smtp.close()
    finish_if_done(broadcast, timezone.now())
    return handled


def release_unsent(claimed: list[Claimed]) -> None:
    """Back to `queued` for the messages of a batch whose connection broke.

    The message being sent when the connection broke is among them: SMTP servers accept a
    message only when they answer the end of its data, and that answer never came.
    """
    Delivery.objects.filter(pk__in=[c.id for c in claimed], state=Delivery.State.SENDING).update(
        state=Delivery.State.QUEUED, claimed_at=None, message_id=None
    )


def send_due_broadcasts(stop=lambda: False, per_account: int = 2000) -> int:
    """One round over every account: give up stale claims, then send up to `per_account`
    messages of its due broadcasts (so one big broadcast cannot starve other accounts)."""
    from accounts.models import Account

    handled = 0
    # Not an account being moved (its writes would land in the copy being left behind),
    # provisioned or deleted.
    for account in Account.objects.filter(state=Account.State.ACTIVE).order_by("pk"):
        if stop():
            break
        with account:
            now = timezone.now()
            give_up_stale_claims(now)
            for broadcast in Broadcast.objects.due(now)[:10]:
                if stop() or handled >= per_account:
                    break
                handled += send_broadcast(broadcast, limit=per_account, stop=stop)
    return handled


def send_forever(stop=lambda: False, idle_seconds: float = 2.0) -> None:
    while not stop():
        try:
            handled = send_due_broadcasts(stop)
        except (smtplib.SMTPException, OSError, ConnectionBroke):
            log.warning("sending round failed; retrying shortly", exc_info=True)
            handled = 0
            time.sleep(10)
        except DatabaseError:
            log.warning("database unavailable; retrying shortly", exc_info=True)
            connection.close()
            handled = 0
            time.sleep(5)
        if not handled:
            time.sleep(idle_seconds)
