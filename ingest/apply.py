"""Applying spooled items to one account's tables, set-wise, in one transaction.

Person state is resolved in Python (items must be applied in order, attribute by attribute),
then written with a handful of set-based statements: new people by COPY with ids taken from
their sequence beforehand, changed people by one UPDATE over `unnest` arrays, new events by
COPY after one lookup of the batch's dedupe keys (so a replayed event changes nothing), and
activity summaries and events per day by one upsert each.

Large lists travel as one JSON text each (`as_json`), unpacked by PostgreSQL
(`json_array_elements_text`, `json_to_recordset`): adapting a Python list to an SQL array
goes element by element in Python and cost more than the statements themselves.

Every statement is parameterised; the only names in SQL text are our own table names.
"""

import gc
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
import psycopg
from django.db import DatabaseError, connection, transaction

from accounts.models import restore
from messaging.events import OPS as MESSAGING_OPS
from messaging.events import record_items as record_messaging_items
from segments.membership import EVERYTHING, Cause, change_members
from segments.membership import update_touched as update_segment_memberships
from segments.models import Segment

PERSON = "segments_person"
EVENT = "segments_event"
SUMMARY = "segments_activitysummary"
EVENT_DAY = "segments_eventday"
SUPPRESSION = "segments_suppression"
ANONYMOUS_MERGE_WINDOW_DAYS = 30
# Customer.io removes an attribute that is sent empty.
EMPTY = (None, "")
NEVER = float("-inf")
# attribute_times' key for the time of every attribute in `attributes` without an entry of its
# own: people created whole (an import's rows) store {"": at} instead of one entry per
# attribute, about a fifth of the COPY's PostgreSQL time saved. No attribute is named "": the
# API, the import's mapping and the dashboard all refuse a blank name. `unsubscribed`, which
# messaging.events compares in SQL, always has an entry of its own: people created whole are
# given no identity attribute but their email.
EVERY_ATTRIBUTE = ""
# Attributes that also change how the batch finds the person, or a column of their own.
IDENTITY_ATTRIBUTES = frozenset({"email", "unsubscribed", "anonymous_id"})
# The account's writer lock (see lock_writer), for the connection's current schema.
WRITER_LOCK = "hashtext(current_schema())"
# `column = ANY_OF_JSON` with a JSON list of strings (see as_json) as the parameter.
ANY_OF_JSON = "ANY(ARRAY(SELECT json_array_elements_text(%s::json)))"


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cycle collector off while a batch is built and applied.

    A batch allocates hundreds of thousands of small dicts and lists; each allocation run sets
    off a collection that walks them all, for nothing: they hold no cycles and are freed by
    reference counting. That walking was about a fifth of the drain's own CPU time.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# How often Python hands its lock from a busy thread to a waiting one while a pipeline runs
# (Python's default: every 5 ms). A writer's thread feeds COPY data to PostgreSQL, the
# pipeline's slowest stage; each time the socket takes more, the thread needs the lock back,
# and with the planning and reading threads busy in Python it waited up to a whole interval
# for it while PostgreSQL waited for data. Measured on 1,000,000-row imports, alternated:
# 34,788 and 33,406 rows/s at 0.5 ms against 29,762 and 29,454 at 5 ms.
SWITCH_INTERVAL = 0.0005
_switching = {"pipelines": 0, "before": 0.0}
_switching_lock = threading.Lock()


@contextmanager
def writer_fed_promptly() -> Iterator[None]:
    """Python switches threads every SWITCH_INTERVAL while any pipeline of this process runs
    (the setting is the process's: the last pipeline to finish restores it)."""
    with _switching_lock:
        if _switching["pipelines"] == 0:
            _switching["before"] = sys.getswitchinterval()
            sys.setswitchinterval(min(SWITCH_INTERVAL, _switching["before"]))
        _switching["pipelines"] += 1
    try:
        yield
    finally:
        with _switching_lock:
            _switching["pipelines"] -= 1
            if _switching["pipelines"] == 0:
                sys.setswitchinterval(_switching["before"])


@dataclass(slots=True)  # slots: a batch makes one per person, and reads their fields often
class PersonState:
    id: int | None
    customer_id: str | None
    email: str | None
    attributes: dict
    attribute_times: dict
    unsubscribed: bool
    created: bool = False
    changed: bool = False
    # Loaded without attributes: the batch only gives this person events.
    partial: bool = False
    # What the batch changed of them, as segments read it (rules.reads' keys).
    touched: set[str] = field(default_factory=set)


@dataclass
class Outcome:
    applied: int = 0
    suppressed: int = 0
    failures: list[tuple[int, str]] = field(default_factory=list)  # (item index, reason)


class Batch:
    """The people an account's batch touches, loaded once and changed in memory."""

    def __init__(self) -> None:
        self.by_id: dict[str, PersonState] = {}
        self.by_email: dict[str, PersonState] = {}
        self.by_anonymous: dict[str, PersonState] = {}
        self.loaded: dict[int, PersonState] = {}
        self.deleted: set[int] = set()
        self.suppressed: set[tuple[str, str]] = set()
        self.events: list[tuple] = []
        self.merges: list[tuple[PersonState, str]] = []
        self.segment_items: list[tuple[int, dict]] = []  # (item index, manual segment change)
        # What write_batch sends, rendered by prepare (see render_writes): the people it
        # creates and the events it inserts as COPY text, the people it changes, the events'
        # summaries and their days.
        self.created_copy: list[bytes] = []
        self.changed_json = ""
        self.events_copy: list[bytes] = []
        self.summaries_json = ""
        self.days: dict[int, int] = {}  # days since 1970 (UTC): events
        # The dedupe keys of the events it inserts: a batch planned on top of this one, before
        # its commit, must not insert them again (see new_events).
        self.event_keys: set[str] = set()
        # The identifiers the items name (customer ids, emails, anonymous ids), set by load.
        self.named: tuple[set, set, set] = (set(), set(), set())

    def load(self, items: list[dict], previous: "Batch | None" = None) -> None:
        """Read the people the items name: whole for the ones whose attributes may change,
        identifiers only for the ones that only get events. With `previous` (see carry_over),
        not those it holds whole under a customer id or email the items name: carry_over gives
        them as `previous` leaves them, and their rows here would be stale, read for nothing."""
        ids, emails, anonymous = set(), set(), set()
        event_ids, event_emails = set(), set()
        for item in items:
            person = item.get("person") or {}
            if item["op"] == "event":
                if "id" in person:
                    event_ids.add(person["id"])
                if "email" in person:
                    event_emails.add(person["email"])
            else:
                if "id" in person:
                    ids.add(person["id"])
                if "email" in person:
                    emails.add(person["email"])
            attributes = item.get("attributes") or {}
            if isinstance(attributes.get("email"), str):
                emails.add(attributes["email"])
            if item.get("anonymous_id"):
                anonymous.add(item["anonymous_id"])
        event_ids -= ids
        event_emails -= emails
        self.named = (ids | event_ids, emails | event_emails, anonymous)
        if not (ids or emails or anonymous or event_ids or event_emails):
            return
        with bound_cursor() as cursor:
            cursor.execute(
                f"""
                SELECT kind, value FROM {SUPPRESSION}
                WHERE (kind = 'id' AND value = {ANY_OF_JSON})
                   OR (kind = 'email' AND value = {ANY_OF_JSON})
                """,
                [as_json(self.named[0]), as_json(self.named[1])],
            )
            self.suppressed = {(kind, value) for kind, value in cursor.fetchall()}
            if previous is not None:
                ids, event_ids = previous.unheld(ids, "id"), previous.unheld(event_ids, "id")
                emails = previous.unheld(emails, "email")
                event_emails = previous.unheld(event_emails, "email")
            # One indexed lookup per identifier kind; an OR across them would scan the table.
            # UNION ALL: duplicates are dropped below, not by comparing whole rows.
            if ids or emails or anonymous:
                cursor.execute(
                    f"""
                    SELECT id, customer_id, email, attributes::text, attribute_times::text,
                           unsubscribed
                    FROM {PERSON} WHERE customer_id = {ANY_OF_JSON}
                    UNION ALL
                    SELECT id, customer_id, email, attributes::text, attribute_times::text,
                           unsubscribed
                    FROM {PERSON} WHERE lower(email) = {ANY_OF_JSON}
                    UNION ALL
                    SELECT id, customer_id, email, attributes::text, attribute_times::text,
                           unsubscribed
                    FROM {PERSON} WHERE attributes->>'anonymous_id' = {ANY_OF_JSON}
                        -- person_anonymous_id holds only these; the planner cannot tell
                        -- from the array alone (it might be empty)
                        AND attributes->>'anonymous_id' IS NOT NULL
                    """,
                    [as_json(ids), as_json(emails), as_json(anonymous)],
                )
                loads = orjson.loads
                for id_, customer_id, email, attributes, times, unsubscribed in cursor:
                    if id_ not in self.loaded:
                        state = PersonState(
                            id_, customer_id, email, loads(attributes), loads(times), unsubscribed
                        )
                        self.loaded[id_] = state
                        self.remember(state)
            if event_ids or event_emails:
                cursor.execute(
                    f"""
                    SELECT id, customer_id, email, unsubscribed FROM {PERSON}
                    WHERE customer_id = {ANY_OF_JSON}
                    UNION ALL
                    SELECT id, customer_id, email, unsubscribed FROM {PERSON}
                    WHERE lower(email) = {ANY_OF_JSON}
                    """,
                    [as_json(event_ids), as_json(event_emails)],
                )
                for id_, customer_id, email, unsubscribed in cursor:
                    if id_ not in self.loaded:
                        state = PersonState(
                            id_, customer_id, email, {}, {}, unsubscribed, partial=True
                        )
                        self.loaded[id_] = state
                        self.remember(state)

    def unheld(self, values: set[str], kind: str) -> set[str]:
        """The customer ids or emails among `values` that this batch holds no whole person
        under (none, or one read only for events)."""
        index = self.by_id if kind == "id" else self.by_email
        return {value for value in values if (held := index.get(value)) is None or held.partial}

    def people(self) -> list[PersonState]:
        """Every person the batch holds, once each."""
        states = (*self.loaded.values(), *self.by_id.values(), *self.by_email.values(),
                  *self.by_anonymous.values())  # fmt: skip
        return list({id(state): state for state in states}.values())

    def carry_over(self, previous: "Batch") -> None:
        """See the people `previous` holds as `previous` leaves them (after load).

        For a batch read while `previous` is still being written on another connection (an
        import's chunks, segments.imports): what load read of those people is stale, and the
        ones `previous` creates are not there at all. Copies, never `previous`'s own states:
        another thread writes those meanwhile. Ids of new people are already drawn (see
        assign_ids), so the copies are existing people to this batch. People `previous` only
        read for events (partial) keep their stored row, which it does not change.
        """
        kept = []
        if self.loaded:  # else nothing read that could be stale (a chunk of new people)
            held = [state for state in previous.people() if not state.partial]
            stale = {state.id for state in held} | previous.deleted
            kept = [state for state in self.loaded.values() if state.id not in stale]
        self.loaded, self.by_id, self.by_email, self.by_anonymous = {}, {}, {}, {}
        for state in kept:
            self.loaded[state.id] = state
            self.remember(state)
        ids, emails, anonymous = self.named
        found = [previous.by_id.get(value) for value in ids]
        found += [previous.by_email.get(value) for value in emails]
        found += [previous.by_anonymous.get(value) for value in anonymous]
        for state in found:
            if state is None or state.partial or state.id in self.loaded:
                continue
            copy = PersonState(
                state.id, state.customer_id, state.email, dict(state.attributes),
                dict(state.attribute_times), state.unsubscribed,
            )  # fmt: skip
            self.loaded[copy.id] = copy
            self.remember(copy)

    def remember(self, state: PersonState) -> None:
        if state.customer_id:
            self.by_id[state.customer_id] = state
        if state.email:
            self.by_email[state.email.lower()] = state
        anonymous_id = state.attributes.get("anonymous_id")
        if anonymous_id:
            self.by_anonymous[str(anonymous_id)] = state

    def is_suppressed(self, item: dict) -> bool:
        """Does the item name a suppressed person, by its identifier or a new email?"""
        if not self.suppressed:
            return False
        person = item.get("person") or {}
        email = (item.get("attributes") or {}).get("email")
        keys = {("id", person.get("id")), ("email", person.get("email")), ("email", email)}
        return bool(keys & self.suppressed)

    def find(self, person: dict) -> PersonState | None:
        if "id" in person:
            return self.by_id.get(person["id"])
        return self.by_email.get(person["email"])

    def find_or_create(self, person: dict) -> PersonState:
        return self.find(person) or self.create(person)

    def create(self, person: dict) -> PersonState:
        email = person.get("email")
        state = PersonState(
            None, person.get("id"), email, {"email": email} if email else {}, {}, False,
            created=True,
        )  # fmt: skip
        self.remember(state)
        return state

    def create_whole(self, person: dict, values: dict, at: float) -> PersonState | None:
        """create and set_attributes in one, for a person given all their first values at once
        (an import's every row): the same person, without the comparison loop and its
        intermediate dicts. None where the general path is needed: an identity attribute
        other than their own email, an empty value, an email taken by someone else.
        The caller has found nobody by `person`."""
        if "unsubscribed" in values or "anonymous_id" in values:
            return None
        given = values.values()
        # all(): a quick look for a falsy value first, since `in` compares every value by type.
        if not all(given) and (None in given or "" in given):
            return None
        email = person.get("email")
        if "email" in values:
            if values["email"] != email:
                return None
            if email in self.by_email and email != email.lower():
                return None  # set_attributes finds its owner: the refusal is the general path's
            attributes = values.copy()  # never the item's own: a failed chunk applies it again
            times = {EVERY_ATTRIBUTE: at}
        elif email:
            # The email they are created by keeps no time of its own (set_attributes' `whole`).
            attributes = {"email": email, **values}
            times = dict.fromkeys(values, at)
        else:
            attributes = values.copy()
            times = {EVERY_ATTRIBUTE: at}
        # Positional: keywords cost as much again as the rest of the call.
        state = PersonState(None, person.get("id"), email, attributes, times, False, True, True)
        if state.customer_id:
            self.by_id[state.customer_id] = state
        if email:
            self.by_email[email.lower()] = state
        return state

    def forget(self, state: PersonState) -> None:
        for index, key in (
            (self.by_id, state.customer_id),
            (self.by_email, (state.email or "").lower()),
        ):
            if key and index.get(key) is state:
                del index[key]
        self.by_anonymous = {k: v for k, v in self.by_anonymous.items() if v is not state}


def set_attributes(batch: Batch, state: PersonState, values: dict, at: float) -> str | None:
    """Apply attribute changes older-loses; returns a reason if the change must fail."""
    if state.partial:
        # Batch.load reads people whole wherever an item may change them; reaching here
        # would mean writing attributes that were never read. Item by item, it is read whole.
        raise ValueError("person loaded without attributes")
    new_email = values.get("email")
    if isinstance(new_email, str) and new_email != (state.email or "").lower():
        owner = batch.by_email.get(new_email)
        if owner is not None and owner is not state:
            return f"email {new_email} belongs to another person"
    times, attributes = state.attribute_times, state.attributes
    given = values.values()
    if state.created and not times and None not in given and "" not in given:
        identity = values.keys() & IDENTITY_ATTRIBUTES
        if not identity or (identity == {"email"} and new_email == state.email):
            # A person this batch creates, given their first values (an import's every row):
            # nothing is stored to lose to, and touched_keys takes new people whole, so the
            # loop below would only compare with nothing. Its email, if any, is theirs already.
            # One time for them all, unless an attribute is already there without a time (the
            # email they were created by, not given again), which must keep none.
            whole = attributes.keys() <= values.keys()
            state.attribute_times = {EVERY_ATTRIBUTE: at} if whole else dict.fromkeys(values, at)
            attributes.update(values)
            state.changed = True
            return None
    changed = False
    every = times.get(EVERY_ATTRIBUTE, NEVER)
    for name, value in values.items():
        stored_at = times.get(name)
        if stored_at is None:
            # A removed attribute keeps its own time, so one absent from `attributes` without
            # a time was never set.
            stored_at = every if name in attributes else NEVER
        if at < stored_at:
            continue
        # The same value again (clients send a person's attributes with every identify)
        # changes no segment's answer: only its time is written, and no segment is asked.
        new_value = differs(attributes.get(name), None if value in EMPTY else value)
        changed = changed or at != stored_at or new_value
        times[name] = at
        if new_value:
            state.touched.add(f"attribute:{name}")
        if value in EMPTY:
            attributes.pop(name, None)
        else:
            attributes[name] = value
        if name not in IDENTITY_ATTRIBUTES:
            continue
        if name == "email":
            if state.email and batch.by_email.get(state.email.lower()) is state:
                del batch.by_email[state.email.lower()]
            state.email = value if value not in EMPTY else None
            if state.email:
                batch.by_email[state.email] = state
        elif name == "unsubscribed":
            if state.unsubscribed != bool(value):
                state.touched.add("subscription")
            state.unsubscribed = bool(value)
        elif name == "anonymous_id" and value not in EMPTY:
            batch.by_anonymous[str(value)] = state
            batch.merges.append((state, str(value)))
    # The same change again (a replayed item) writes nothing: an UPDATE that changes nothing
    # still writes a new row version and its WAL. (The same values at a later time do need
    # writing, for the times; with attributes unchanged that update can be HOT.)
    state.changed = state.changed or changed
    return None


def differs(stored: object, new: object) -> bool:
    return stored != new or type(stored) is not type(new)  # 1 == True, but not in JSON


def plan(batch: Batch, items: list[dict], received_at: float) -> Outcome:
    outcome = Outcome()
    for index, item in enumerate(items):
        op = item["op"]
        if op != "delete" and batch.is_suppressed(item):
            # Suppressed people are not created again; the item is consumed on purpose.
            outcome.suppressed += 1
            continue
        if op == "identify":
            state = batch.find(item["person"])
            if state is None and item.get("update_only"):
                outcome.failures.append((index, "_update: the person does not exist"))
                continue
            if (
                state is None
                and not item.get("anonymous_id")
                and batch.create_whole(item["person"], item["attributes"], item["at"])
            ):
                outcome.applied += 1
                continue
            created = state is None
            state = state or batch.create(item["person"])
            reason = set_attributes(batch, state, item["attributes"], item["at"])
            if reason:
                # Nothing of a failed item is stored: not the person it alone would create.
                if created:
                    batch.forget(state)
                outcome.failures.append((index, reason))
                continue
            if item.get("anonymous_id"):
                set_attributes(batch, state, {"anonymous_id": item["anonymous_id"]}, item["at"])
        elif op == "delete":
            state = batch.find(item["person"])
            if state is not None:
                if state.id is not None:
                    batch.deleted.add(state.id)
                batch.forget(state)
                batch.events = [e for e in batch.events if e[0] is not state]
                batch.merges = [m for m in batch.merges if m[0] is not state]
        elif op in ("segment_add", "segment_remove"):
            batch.segment_items.append((index, item))
        elif op == "alias":
            state = batch.find_or_create(item["person"])
            batch.merges.append((state, item["previous_id"]))
        elif op == "event":
            person = item.get("person")
            state = batch.find_or_create(person) if person else None
            anonymous_id = item.get("anonymous_id")
            if state is None and anonymous_id:
                state = batch.by_anonymous.get(anonymous_id)
            if state is not None:
                state.touched.add(f"event:{item['name']}")
            batch.events.append((
                state, None if state else anonymous_id, item["kind"], item["name"],
                copy_json(item["data"]), item["timestamp"], item["dedupe"],
            ))  # fmt: skip
        elif op in MESSAGING_OPS:
            pass  # recorded after the people are written: see record_messaging
        else:
            outcome.failures.append((index, f"unknown operation {op!r}"))
            continue
        outcome.applied += 1
    return outcome


def apply_items(items: list[dict]) -> Outcome:
    """Apply an account's items (the connection is already on its schema) in one transaction."""
    received_at = time.time()
    with transaction.atomic():
        lock_writer()
        batch, outcome = prepare(items, received_at)
        write_batch(batch, outcome, items, received_at)
    return outcome


def lock_writer() -> None:
    """One writer per account at a time, until the transaction ends: people are read, changed
    in memory and written back, so two drain workers on the same account would overwrite each
    other's changes (or deadlock). Workers on different accounts proceed in parallel. (An
    import holds the same key as a session lock for a stretch of chunks: segments.imports.)"""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT pg_advisory_xact_lock({WRITER_LOCK})")


def prepare(
    items: list[dict], received_at: float, previous: Batch | None = None
) -> tuple[Batch, Outcome]:
    """Read the people the items name and apply the items to them in memory, then render
    what write_batch sends (render_writes); `previous` is a batch planned before, not yet
    committed (carry_over).

    The rendering is done here, not by write_batch: the drain and imports prepare a batch
    while the one before is written, and the writer (whose PostgreSQL is their critical path)
    then only sends bytes."""
    batch = Batch()
    batch.load(items, previous)
    if previous is not None:
        batch.carry_over(previous)
    outcome = plan(batch, items, received_at)
    with bound_cursor() as cursor:
        assign_ids(cursor, batch)
        events = new_events(cursor, batch, previous)
    render_writes(batch, events, received_at)
    return batch, outcome


def another_writer_waits() -> bool:
    """Does a session wait for the account's writer lock (this connection on the account)?
    pg_locks shows an advisory lock's bigint key as two oids."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT EXISTS (
                SELECT FROM pg_locks, (SELECT {WRITER_LOCK}::bigint AS key) AS k
                WHERE locktype = 'advisory' AND NOT granted AND objsubid = 1
                  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
                  AND classid = ((key >> 32) & 4294967295)::oid
                  AND objid = (key & 4294967295)::oid
            )
            """
        )
        return cursor.fetchone()[0]


class WriterConnection:
    """A connection of its own, on a thread of its own, that writes batches prepared on the
    caller's connection while the caller prepares the next (an import's chunks, the drain's
    batches of one account), holding the account's writer lock as a session lock meanwhile.

    The lock is what lets the next batch be read and planned while this one is written:
    nobody else (another drain worker, an import, the dashboard's membership changes) changes
    the account's people between that read and that write. The connection starts on the
    caller's current tenant, which must be the account.
    """

    def __init__(self, name: str) -> None:
        self.locked = False
        self.thread = ThreadPoolExecutor(1, thread_name_prefix=name)
        try:
            self.run(restore, connection.tenant)
        except BaseException:
            self.close()
            raise

    def run[T](self, function: Callable[..., T], *args) -> T:
        return self.thread.submit(function, *args).result()

    def submit[T](self, function: Callable[..., T], *args) -> Future[T]:
        return self.thread.submit(function, *args)

    def lock(self) -> None:
        self.run(_execute, f"SELECT pg_advisory_lock({WRITER_LOCK})")
        self.locked = True

    def unlock(self) -> None:
        if self.locked:
            self.locked = False
            self.run(_execute, f"SELECT pg_advisory_unlock({WRITER_LOCK})")

    def close(self) -> None:
        """Release the lock and the connection (closing it would release the lock as well)."""
        try:
            self.unlock()
        except DatabaseError:
            pass  # a broken connection: closing it lets go of the lock as well
        finally:
            self.run(_close_connection)
            self.thread.shutdown()


def _execute(sql: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql)


def _close_connection() -> None:
    connection.close()  # looked up here: `connection` is each thread's own


class PredecessorFailed(Exception):
    """The batch a batch was planned on top of did not commit (see write_batch)."""


def write_batch(
    batch: Batch, outcome: Outcome, items: list[dict], received_at: float,
    after: Callable[[], bool] | None = None,
) -> None:  # fmt: skip
    """Write a prepared batch, in the caller's transaction, under the account's writer lock.

    Its new events go first. With `after`, the batch was planned on top of another that is
    still being written on another connection (ingest.drain.Overlap): only the events are
    written before `after()` says whether that batch committed (else PredecessorFailed, and
    the caller rolls back). They wait for nothing of it, nor it for them: their keys are not
    its keys (new_events), their ids are drawn from the sequence, and no other statement of
    a batch reads uncommitted events. Everything else may change rows that batch changed."""
    with bound_cursor() as cursor:
        copy_events(cursor, batch)
        if after is not None and not after():
            raise PredecessorFailed
        write_people(cursor, batch, received_at)
        summarise_events(cursor, batch)
        merge_anonymous(cursor, batch)
        write_segment_changes(cursor, batch, outcome)
    unsubscribed = record_messaging(items)
    update_segment_memberships(touched_keys(batch, unsubscribed))


def record_messaging(items: list[dict]) -> set[int]:
    """Opens, clicks, provider events and unsubscribes (messaging/events.py); returns the
    people whose subscription changed."""
    messaging_items = [item for item in items if item["op"] in MESSAGING_OPS]
    return record_messaging_items(messaging_items) if messaging_items else set()


def touched_keys(batch: Batch, everything: set[int]) -> dict[int, set[str] | None]:
    """What the batch changed of each person it touched, for their segments: attribute and
    event names; EVERYTHING for new people, people given their anonymous events (of any name)
    and `everything` (messaging's subscription changes)."""
    merged = {id(state) for state, _ in batch.merges}
    states = [*batch.by_id.values(), *batch.by_email.values(), *batch.by_anonymous.values()]
    states += [state for state, *_ in batch.events if state is not None]
    touched: dict[int, set[str] | None] = {}
    for state in states:
        if state.id is None or state.id in batch.deleted:
            continue
        if state.created or id(state) in merged:
            touched[state.id] = EVERYTHING
        elif state.touched:  # else nothing of theirs changed (an older attribute value, say)
            touched[state.id] = state.touched
    touched.update(dict.fromkeys(everything - batch.deleted, EVERYTHING))
    return touched


def write_segment_changes(cursor, batch: Batch, outcome: Outcome) -> None:
    """Track API add_customers / remove_customers: existing people only, manual segments only."""
    for index, item in batch.segment_items:
        segment = Segment.objects.filter(pk=item["segment"]).first()
        if segment is None or not segment.is_manual:
            reason = "does not exist" if segment is None else "is data-driven, not manual"
            outcome.failures.append((index, f"segment {item['segment']} {reason}"))
            outcome.applied -= 1
            continue
        column = "lower(email)" if item["id_type"] == "email" else "customer_id"
        cursor.execute(f"SELECT id FROM {PERSON} WHERE {column} = ANY(%s)", [item["ids"]])
        people = [row[0] for row in cursor.fetchall()]
        change_members(segment, people, Cause.API, add=item["op"] == "segment_add")


def bound_cursor() -> psycopg.Cursor:
    """A cursor on the account's connection (search path already set) that sends parameters
    separately from the SQL, arrays in binary, instead of quoting them into the text.
    Django's cursor first: it sets the search path if the tenant changed since."""
    connection.cursor().close()
    return psycopg.Cursor(connection.connection)


def written_people(batch: Batch) -> list[PersonState]:
    """The people write_people looks at: the batch's, its merges' and its events'."""
    states = {id(state): state for state in (*batch.by_id.values(), *batch.by_email.values())}
    states.update({id(s): s for s, _ in batch.merges})
    states.update({id(e[0]): e[0] for e in batch.events if e[0] is not None})
    return list(states.values())


def assign_ids(cursor, batch: Batch) -> None:
    """Draw the ids of the people the batch creates from the table's sequence, before any
    write: the batch's events need them, COPY returns none, and a batch planned while this one
    is written must know them (Batch.carry_over). A batch that fails leaves a gap, harmless.
    MATERIALIZED: a subquery would be pulled up and the sequence looked up by name for every
    row, five times the cost of the nextval calls themselves (about 1 s of a 300,000-row
    import)."""
    created = [s for s in written_people(batch) if s.created and s.id is None]
    if not created:
        return
    cursor.execute(
        f"""
        WITH s AS MATERIALIZED (
            SELECT pg_get_serial_sequence('{PERSON}', 'id')::regclass AS sequence
        )
        SELECT nextval(sequence) FROM s, generate_series(1, %s)
        """,
        [len(created)],
    )
    for state, (new_id,) in zip(created, cursor.fetchall(), strict=True):
        state.id = new_id


def render_writes(batch: Batch, events: list[tuple], received_at: float) -> None:
    """Render the batch's writes (see Batch): new people and new events as COPY text, changed
    people and summaries as JSON."""
    stamp = datetime.fromtimestamp(received_at, UTC).isoformat()
    people = written_people(batch)
    batch.created_copy = list(new_people_copy([s for s in people if s.created], stamp))
    changed = [
        (s.id, s.customer_id, s.email, s.attributes, s.attribute_times, s.unsubscribed)
        for s in people
        if s.changed and not s.created
    ]
    batch.changed_json = as_json(changed) if changed else ""
    if events:
        render_events(batch, events, stamp)


def write_people(cursor, batch: Batch, now: float) -> None:
    if batch.deleted:
        cursor.execute(f"DELETE FROM {PERSON} WHERE id = ANY(%s)", [list(batch.deleted)])
    if batch.created_copy:  # ids drawn by assign_ids
        names = (
            "id, customer_id, email, attributes, attribute_times, unsubscribed, created_at, "
            "updated_at"
        )
        with cursor.copy(f"COPY {PERSON} ({names}) FROM STDIN") as copy:
            for block in batch.created_copy:
                copy.write(block)
    if batch.changed_json:
        cursor.execute(
            f"""
            UPDATE {PERSON} AS p SET customer_id = i.customer_id, email = i.email,
                attributes = i.attributes, attribute_times = i.attribute_times,
                unsubscribed = i.unsubscribed, updated_at = %s
            FROM (
                SELECT (r->>0)::bigint AS id, r->>1 AS customer_id, r->>2 AS email,
                       r->3 AS attributes, r->4 AS attribute_times,
                       (r->>5)::boolean AS unsubscribed
                FROM jsonb_array_elements(%s::jsonb) AS r
            ) AS i
            WHERE p.id = i.id
            """,
            [datetime.fromtimestamp(now, UTC), batch.changed_json],
        )


def as_json(values) -> str:
    """A list (or set, or list of rows) as one JSON text, for ANY_OF_JSON and the like."""
    return orjson.dumps(values if isinstance(values, list) else list(values)).decode()


# COPY's text format, written by new_people_copy: these characters are escaped in a value.
COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
BACKSLASH = ord("\\")
COPY_BLOCK_ROWS = 1_000


def new_people_copy(people: list[PersonState], stamp: str) -> Iterator[bytes]:
    """The COPY text (all columns but the last two are the person's, then `stamp` twice) of
    new people, in blocks of COPY_BLOCK_ROWS rows (sent one after another by write_people).

    Built here rather than by psycopg's write_row, which adapts every value through its dumpers
    and cost about a fifth of the import's Python time: the values are known to be text, JSON
    and booleans. The one time of people created whole ({"": at}, every row of an import) is
    encoded once per batch.
    """
    tail = b"\t%s\t%s\n" % (stamp.encode(), stamp.encode())
    shared_at, shared_text = None, b""
    block: list[bytes] = []
    for state in people:
        times = state.attribute_times
        at = times.get(EVERY_ATTRIBUTE) if len(times) == 1 else None
        if at is None:
            times_text = copy_json(times)
        else:
            if at is not shared_at:  # the same object (an import's rows share it): same JSON
                shared_at, shared_text = at, copy_json(times)
            times_text = shared_text
        block.append(b"%d\t%b\t%b\t%b\t%b\t%b%b" % (
            state.id, copy_text(state.customer_id), copy_text(state.email),
            copy_json(state.attributes), times_text, b"t" if state.unsubscribed else b"f", tail,
        ))  # fmt: skip
        if len(block) == COPY_BLOCK_ROWS:
            yield b"".join(block)
            block = []
    if block:
        yield b"".join(block)


def copy_text(value: str | None) -> bytes:
    """A text value (or NULL) in COPY's text format, in UTF-8 (Django's connections always
    are)."""
    if value is None:
        return b"\\N"
    if not value.isprintable() or "\\" in value:  # else nothing to escape (the usual case)
        if "\x00" in value:
            raise psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes")
        value = value.translate(COPY_ESCAPES)
    return value.encode()


def copy_json(value: object) -> bytes:
    """A value as JSON in COPY's text format: orjson escapes control characters itself, so a
    backslash is the only character left to escape."""
    data = orjson.dumps(value)
    return data.replace(b"\\", b"\\\\") if BACKSLASH in data else data


# How new events are added to a summary that exists (`s`: the summaries table).
ADD_TO_SUMMARY = """
ON CONFLICT (person_id, name) DO UPDATE SET
    count = s.count + excluded.count,
    first_at = least(s.first_at, excluded.first_at),
    last_at = greatest(s.last_at, excluded.last_at)
"""
SUMMARISE = f"""
INSERT INTO {SUMMARY} AS s (person_id, name, count, first_at, last_at)
SELECT person_id, name, count(*), min(timestamp), max(timestamp)
FROM touched WHERE person_id IS NOT NULL GROUP BY person_id, name
{ADD_TO_SUMMARY}
"""


def new_events(cursor, batch: Batch, previous: Batch | None) -> list[tuple]:
    """The batch's events that are not stored yet, by dedupe key (a key repeated in the batch:
    the first one), each once. Decided here, not by ON CONFLICT: the account's writer lock
    (see lock_writer, WriterConnection) means no other writer inserts events for this account
    meanwhile, so one indexed lookup of the batch's keys finds every event that is stored,
    and `previous`'s keys every one that is about to be."""
    if not batch.events:
        return []
    unique: dict[str, tuple] = {}
    for event in batch.events:
        unique.setdefault(event[-1], event)
    if previous is not None:
        for key in previous.event_keys & unique.keys():
            del unique[key]
    cursor.execute(
        f"SELECT dedupe_key FROM {EVENT} WHERE dedupe_key = {ANY_OF_JSON}", [as_json(unique)]
    )
    for (stored,) in cursor.fetchall():
        del unique[stored]
    batch.event_keys = set(unique)
    return list(unique.values())


DAY_SECONDS = 86_400


def render_events(batch: Batch, events: list[tuple], received: str) -> None:
    """The new events as COPY text (times as text: psycopg's adaptation of a datetime took
    about 2 µs, most of the time a row took to format), their activity summaries as JSON and
    their counts per day."""
    tail = b"\t%s\t" % received.encode()
    summaries: dict[tuple[int, str], list] = {}
    days: dict[int, int] = {}
    block: list[bytes] = []
    copies = batch.events_copy
    for state, anonymous_id, kind, name, data, timestamp, dedupe in events:
        moment = datetime.fromtimestamp(timestamp, UTC).isoformat()
        person_id = state.id if state else None
        block.append(b"%b\t%b\t%b\t%b\t%b\t%b%b%b\n" % (
            b"\\N" if person_id is None else b"%d" % person_id, copy_text(anonymous_id),
            copy_text(kind), copy_text(name), data, moment.encode(), tail, copy_text(dedupe),
        ))  # fmt: skip
        if len(block) == COPY_BLOCK_ROWS:
            copies.append(b"".join(block))
            block = []
        day = int(timestamp // DAY_SECONDS)
        days[day] = days.get(day, 0) + 1
        if person_id is not None:
            # [count, first, last, first as text, last as text]: the texts are the events'
            # own, so a summary's times equal its events' to the microsecond.
            summary = summaries.get((person_id, name))
            if summary is None:
                summaries[(person_id, name)] = [1, timestamp, timestamp, moment, moment]
            else:
                summary[0] += 1
                if timestamp < summary[1]:
                    summary[1], summary[3] = timestamp, moment
                elif timestamp > summary[2]:
                    summary[2], summary[4] = timestamp, moment
    if block:
        copies.append(b"".join(block))
    batch.days = days
    rows = [
        (person_id, name, count, first, last)
        for (person_id, name), (count, _, _, first, last) in summaries.items()
    ]
    batch.summaries_json = as_json(rows) if rows else ""  # none: anonymous events only


def copy_events(cursor, batch: Batch) -> None:
    """COPY the batch's new events (new_events, rendered by render_events) straight into the
    events table."""
    if not batch.events_copy:
        return
    columns_ = "person_id, anonymous_id, kind, name, data, timestamp, received_at, dedupe_key"
    with cursor.copy(f"COPY {EVENT} ({columns_}) FROM STDIN") as copy:
        for block in batch.events_copy:
            copy.write(block)


def summarise_events(cursor, batch: Batch) -> None:
    """Add the batch's new events to the activity summaries and the events per day."""
    if not batch.events_copy:
        return
    if batch.summaries_json:
        cursor.execute(
            f"""
            INSERT INTO {SUMMARY} AS s (person_id, name, count, first_at, last_at)
            SELECT (r->>0)::bigint, r->>1, (r->>2)::integer, (r->>3)::timestamptz,
                   (r->>4)::timestamptz
            FROM jsonb_array_elements(%s::jsonb) AS r
            ORDER BY 1, 2
            {ADD_TO_SUMMARY}
            """,
            [batch.summaries_json],
        )
    cursor.execute(
        f"""
        INSERT INTO {EVENT_DAY} AS d (day, count)
        SELECT date '1970-01-01' + day, count
        FROM unnest(%s::integer[], %s::bigint[]) AS u(day, count)
        ON CONFLICT (day) DO UPDATE SET count = d.count + excluded.count
        """,
        [list(batch.days), list(batch.days.values())],
    )


def merge_anonymous(cursor, batch: Batch) -> None:
    """Give anonymous events to the person who turned out to have sent them."""
    for state, anonymous_id in batch.merges:
        cursor.execute(
            f"""
            WITH touched AS (
                UPDATE {EVENT} SET person_id = %s, anonymous_id = NULL
                WHERE person_id IS NULL AND anonymous_id = %s
                  AND timestamp > now() - make_interval(days => %s)
                RETURNING person_id, name, timestamp
            )
            {SUMMARISE}
            """,
            [state.id, anonymous_id, ANONYMOUS_MERGE_WINDOW_DAYS],
        )
