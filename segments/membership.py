"""Materialised segment memberships, kept current set-wise.

Three paths change who is in a rule-based segment, all through `apply_rule`, one statement per
segment that inserts who entered, deletes who left and logs both:
- saving a rule recomputes that segment for everyone (`recompute`), then the segments that
  read it;
- every drained ingestion batch asks each rule-based segment about the people the batch touched
  (`update_people`, called by ingest/apply.py inside its transaction);
- the periodic sweep recomputes the segments whose rules read the clock (`sweep`).

Segments are visited in dependency order (a segment after the segments it reads), so a
segment-of-segment rule sees memberships already brought up to date. Every writer takes the
account's advisory lock that the drain takes, so two writers never race on the same rows.
"""

import logging
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.db import connection
from django.db.models import OuterRef, Subquery

from config.metrics import time_segment_recompute
from segments.compiler import Query, compile_rule, compile_rules, id_array
from segments.models import (
    MembershipChange,
    MembershipChangeChunk,
    MembershipChangeSet,
    Person,
    Segment,
)
from segments.models.segment import ids_span
from segments.rules import Context, InvalidRule, Node, parse_rule, reads

log = logging.getLogger(__name__)

MEMBERSHIP = "segments_membership"
CHANGE = "segments_membershipchange"
CHANGE_SET = "segments_membershipchangeset"
CHANGE_CHUNK = "segments_membershipchangechunk"
# From this many people entering or leaving at once, the change is one MembershipChangeSet
# (its people in chunks of CHUNK sorted ids) instead of a MembershipChange row per person.
MASS_CHANGE = 1_000
CHUNK = 200
SIZE = "segments_segmentsize"
SEGMENT = "segments_segment"
Cause = MembershipChange.Cause


@dataclass
class Change:
    entered: int = 0
    exited: int = 0
    first: bool = False  # a new segment's first computation: entrants were not logged
    moved: set[int] = field(default_factory=set)  # who entered or left (update_touched only)


def lock_account() -> None:
    """The drain's per-account writer lock, held until the transaction ends."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(current_schema()))")


def room_to_sort() -> None:
    """A full recompute sorts and hashes up to every person of the account (who matches, who
    moved, the change set's chunks): at 1,000,000 people the default work_mem spilled those to
    disk (2 of the 10 seconds of a recompute that moved 610,000 people). For this transaction."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL work_mem = '64MB'")


def stored_rule(segment: Segment, graph: dict[int, list[int]]) -> Node:
    # Validated when saved; read again against today's segments (one may have been deleted).
    return parse_rule(segment.rules, Context(segments=graph, own_id=segment.pk))


def readable(segment: Segment, graph: dict[int, list[int]]) -> bool:
    try:
        stored_rule(segment, graph)
    except InvalidRule as invalid:
        log.error("segment %s has a rule that does not read: %s", segment.pk, invalid)
        return False
    return True


def dependency_order(segments: Iterable[Segment]) -> list[Segment]:
    """Rule-based segments, each after every segment it reads (rules forbid cycles)."""
    by_id = {segment.pk: segment for segment in segments}
    ordered: list[Segment] = []
    placed: set[int] = set()

    def place(segment: Segment, path: frozenset[int]) -> None:
        if segment.pk in placed or segment.pk in path:
            return
        for target in segment.depends_on:
            if target in by_id:
                place(by_id[target], path | {segment.pk})
        placed.add(segment.pk)
        ordered.append(segment)

    for segment in by_id.values():
        place(segment, frozenset())
    return ordered


def graph_of(segments: Iterable[Segment]) -> dict[int, list[int]]:
    return {segment.pk: list(segment.depends_on) for segment in segments}


# The tail of every statement that moves people in or out of segments, after its `moved` CTE
# (segment_id, person_id, entered): each segment's moves logged one row each, or from
# MASS_CHANGE moves on as one change set with its people in sorted chunks (each side's people
# sorted into an array, then sliced); `counts` holds a row per segment that moved anyone.
# Both sides are aggregated in one group per change set, so the rows are sorted by person
# alone: a full recompute's moves come in that order (write_rule), which the sort then only
# checks. Grouped by side too, they were sorted again, 613,000 of them in about 0.1 s.
# Parameters: now, cause, mass, chunk.
LOG_MOVES = f"""counts AS MATERIALIZED (
                SELECT segment_id, count(*) FILTER (WHERE entered) AS entered,
                       count(*) FILTER (WHERE NOT entered) AS exited
                FROM moved GROUP BY segment_id
            ),
            change_set AS (
                INSERT INTO {CHANGE_SET} (segment_id, at, cause, entered, exited)
                SELECT segment_id, %(now)s, %(cause)s, entered, exited FROM counts
                WHERE entered + exited >= %(mass)s
                RETURNING id, segment_id
            ),
            sides AS (
                SELECT change_set.id, side.entered, side.people
                FROM (
                    SELECT change_set.id,
                           array_agg(moved.person_id ORDER BY moved.person_id)
                               FILTER (WHERE moved.entered) AS entrants,
                           array_agg(moved.person_id ORDER BY moved.person_id)
                               FILTER (WHERE NOT moved.entered) AS leavers
                    FROM moved JOIN change_set USING (segment_id)
                    GROUP BY change_set.id
                ) AS change_set,
                LATERAL (VALUES (true, entrants), (false, leavers)) AS side (entered, people)
                WHERE side.people IS NOT NULL
            ),
            chunks AS (
                INSERT INTO {CHANGE_CHUNK}
                    (change_set_id, entered, first_person, last_person, people)
                SELECT sides.id, sides.entered, chunk[1], chunk[cardinality(chunk)], chunk
                FROM sides, generate_series(0, cardinality(sides.people) - 1, %(chunk)s) AS n,
                     LATERAL (SELECT sides.people[n + 1 : n + %(chunk)s] AS chunk) AS sliced
            ),
            logged AS (
                INSERT INTO {CHANGE} (segment_id, person_id, entered, at, cause)
                SELECT segment_id, person_id, moved.entered, %(now)s, %(cause)s
                FROM moved JOIN counts USING (segment_id)
                WHERE counts.entered + counts.exited < %(mass)s
                ORDER BY segment_id, moved.entered DESC, person_id
            )"""


def apply_rule(
    segment: Segment, rule: Node, now: datetime, cause: str, people: list[int] | None = None,
    *, parallel: bool = False,
) -> Change:  # fmt: skip
    """Make the segment's members match the rule (for everyone, or for `people`).

    For everyone, who matches is decided first, on its own (`decide_apart`): with `parallel`,
    by several PostgreSQL processes at once."""
    query = compile_rule(rule, now, people)
    if people is not None:
        change = write_rule(segment, query, now, cause, people)
        if change.entered or change.exited:
            record_size(segment, now, change.entered - change.exited)
        return change
    matching, size = decide_apart(query, parallel)
    if segment.recomputed_at is None and not segment.member_count:
        change = first_computation(segment, matching, now)
    else:
        change = write_rule(segment, matching, now, cause, None)
    # Now the members are exactly who matches (people deleted meanwhile took their
    # memberships with them): no need to count them again.
    record_size(segment, now, size=size)
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE {MATCHING}")
    return change


# Who matches a rule, for everyone, while a full recompute writes its segment, and who of
# them and of its members move (dropped then, or with the transaction that failed).
MATCHING = "pg_temp.ferry_matching"
MOVES = "pg_temp.ferry_moves"


def decide_apart(query: Query, parallel: bool) -> tuple[Query, int]:
    """Decide who matches in a statement of its own, into a scratch table; returns the query
    that reads it and how many match.

    A statement that writes (the INSERT and DELETE of a recompute) never runs a parallel
    plan; a CREATE TABLE AS may. Deciding is most of a full recompute (a scan of every
    person evaluating JSON attributes, or joins of a million people), and the planner, which
    costs a JSON operator like an integer comparison, rarely thinks a parallel plan worth its
    workers: with `parallel` it is told that passing rows between processes costs nothing, so
    it splits any scan it can. Work in the background (the sweep, retention) leaves it off:
    parallel workers are new processes at the usual priority, beside the governor's lowered
    backend."""
    settings = ["enable_nestloop", "enable_hashagg"]
    if parallel:
        settings += ["parallel_setup_cost", "parallel_tuple_cost"]
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {MATCHING}")
        # Every join here is between sets of up to every person. A nested loop would only be
        # chosen on a row estimate far too low (a segment written a moment ago, in this
        # transaction: "1 row" for its 125,000 members), and over an aggregate or a CTE it
        # compares every row with every row: minutes.
        cursor.execute("SET LOCAL enable_nestloop = off")
        # Grouped and deduplicated by sorting, which also gives the order stored: hashing the
        # 766,000 rows of "in segment A or performed upgraded" and then sorting the 696,000
        # people took 0.51-0.60 s, sorting them 0.27-0.35 s (alternated runs).
        cursor.execute("SET LOCAL enable_hashagg = off")
        if parallel:
            cursor.execute("SET LOCAL parallel_setup_cost = 0")
            cursor.execute("SET LOCAL parallel_tuple_cost = 0")
        # In the people's order, which is the order write_rule joins, inserts and logs them
        # in: its sorts then find them sorted and are done in one pass.
        cursor.execute(
            f"CREATE TEMPORARY TABLE {MATCHING.removeprefix('pg_temp.')} ON COMMIT DROP "
            f"AS SELECT id FROM ({query.sql}) AS decided ORDER BY id",
            query.params,
        )
        size = cursor.rowcount
        # (A failed statement ends the transaction, and these settings with it.)
        for name in settings:
            cursor.execute(f"SET LOCAL {name} TO DEFAULT")
    return Query(f"SELECT id FROM {MATCHING}", []), size


def write_rule(
    segment: Segment, query: Query, now: datetime, cause: str, people: list[int] | None
) -> Change:
    """Insert who matches and is not a member, delete members (of `people`, or all) who do not
    match, and log both.

    Who moves is found once, by a full join of who matches with the members, not by an
    anti-join for each side (the DELETE's hashed all of who matches, 678,000 people and 0.6 s,
    to find nobody leaving); the moves logged are that join's rows, as every writer holds the
    account's writer lock. Entrants are inserted in the primary key's order, one leaf page
    after the next instead of a random one each time: 600,000 new memberships took 0.8-0.9 s
    so against 1.4-1.5 s in the order they were decided.

    For everyone, the join is a merge of who matches (decide_apart stored them in order) with
    the members (the primary key's order), into a scratch table: the moves come out in the
    people's order, and every sort after it (the INSERT's, the change set's arrays) finds them
    sorted. A hash join hashed the members, probed with every person who matches and gave the
    moves in no order: a segment-of-segment rule change that moved 613,000 people wrote them
    in 1.59-1.82 s so, 1.09-1.28 s merged (alternated runs on the benchmark's account)."""
    scope, scope_params = "", {}
    if people is not None:
        scope, scope_params = (
            "AND m.person_id = ANY(%(people)s::bigint[])",
            {"people": id_array(people)},
        )
    query_sql, query_params = query.named()
    params = {
        **query_params, **scope_params, "segment": segment.pk, "now": now, "cause": cause,
        "mass": MASS_CHANGE, "chunk": CHUNK,
    }  # fmt: skip
    diff = f"""
        SELECT coalesce(matching.id, members.person_id) AS person_id,
               members.person_id IS NULL AS entering
        FROM ({query_sql} ORDER BY id) AS matching FULL JOIN (
            SELECT m.person_id FROM {MEMBERSHIP} AS m
            WHERE m.segment_id = %(segment)s {scope} ORDER BY m.person_id
        ) AS members ON members.person_id = matching.id
        WHERE matching.id IS NULL OR members.person_id IS NULL
    """
    with connection.cursor() as cursor:
        if people is None:
            # Merged in a statement of its own: without hash joins, the write's semi-join
            # (who leaves) compared every member with every person leaving, 10 s for 87,000
            # members and 2,000 leaving. (For a few people, either join is quick.)
            cursor.execute("SET LOCAL enable_hashjoin = off")
            cursor.execute(
                f"CREATE TEMPORARY TABLE {MOVES.removeprefix('pg_temp.')} ON COMMIT DROP AS {diff}",
                params,
            )
            cursor.execute("SET LOCAL enable_hashjoin TO DEFAULT")
            diff = f"SELECT person_id, entering FROM {MOVES}"
        cursor.execute(
            f"""
            WITH diff AS MATERIALIZED ({diff}),
            entered AS (
                INSERT INTO {MEMBERSHIP} (segment_id, person_id, entered_at)
                SELECT %(segment)s, person_id, %(now)s FROM diff WHERE entering
                ORDER BY person_id
            ),
            exited AS (
                -- Each leaver's membership found by its primary key, whatever the planner
                -- thinks of the sizes: a segment written a moment ago is "1 row" to it, and
                -- as a semi-join it scanned everyone leaving for every member (minutes for
                -- 300,000 members).
                DELETE FROM {MEMBERSHIP} AS m WHERE m.ctid = ANY(ARRAY(
                    SELECT ({MEMBERSHIP_ROW}) FROM (
                        SELECT %(segment)s::bigint AS s, person_id AS p
                        FROM diff WHERE NOT entering
                    ) AS u
                ))
            ),
            moved AS (
                SELECT %(segment)s::bigint AS segment_id, person_id, entering AS entered
                FROM diff
            ),
            {LOG_MOVES}
            SELECT coalesce(sum(entered), 0)::bigint, coalesce(sum(exited), 0)::bigint FROM counts
            """,
            params,
        )
        change = Change(*cursor.fetchone())
        if people is None:
            cursor.execute(f"DROP TABLE {MOVES}")
        return change


def first_computation(segment: Segment, query: Query, now: datetime) -> Change:
    """A new segment's members, written in one plain INSERT and not logged one by one.

    Nobody can be a member yet (the segment was created in this transaction), so there is
    nothing to compare with nor anyone to remove. Each member's row carries when they entered;
    the segment's first version records how many did (see save_segment). Logging every
    entrant too would double the writes of the most common large recompute. Members are
    inserted in the primary key's order (see write_rule)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {MEMBERSHIP} (segment_id, person_id, entered_at) "
            f"SELECT %s, matching.id, %s FROM ({query.sql}) AS matching ORDER BY matching.id",
            [segment.pk, now, *query.params],
        )
        return Change(entered=cursor.rowcount, first=True)


def record_size(
    segment: Segment, now: datetime, delta: int = 0, *, full: bool = False,
    size: int | None = None,
) -> None:  # fmt: skip
    """Keep the segment's size and today's point of the size-over-time chart: changed by
    `delta`, counted again (`full`: people deleted left without an exit), or `size`."""
    with connection.cursor() as cursor:
        if size is not None:
            size_sql, params = "%s", [size]
        elif full:
            size_sql, params = (
                f"(SELECT count(*) FROM {MEMBERSHIP} WHERE segment_id = %s)",
                [segment.pk],
            )
        else:
            size_sql, params = "member_count + %s", [delta]
        cursor.execute(
            f"""
            UPDATE {SEGMENT} SET member_count = {size_sql}, recomputed_at = %s
            WHERE id = %s RETURNING member_count
            """,
            [*params, now, segment.pk],
        )
        segment.member_count = cursor.fetchone()[0]
        segment.recomputed_at = now
        cursor.execute(
            f"""
            INSERT INTO {SIZE} (segment_id, day, size) VALUES (%s, %s, %s)
            ON CONFLICT (segment_id, day) DO UPDATE SET size = excluded.size
            """,
            [segment.pk, now.date(), segment.member_count],
        )


def recompute(
    segment: Segment, cause: str = Cause.RULE, now: datetime | None = None, *,
    parallel: bool = False,
) -> Change:  # fmt: skip
    """Recompute a rule-based segment for everyone, then every segment that reads it
    (`parallel`: someone is waiting, see decide_apart)."""
    now = now or datetime.now(UTC)
    with time_segment_recompute():
        lock_account()
        room_to_sort()
        segments = list(Segment.objects.all())
        graph = graph_of(segments)
        change = Change()
        if not segment.is_manual and segment.rules is not None:
            change = apply_rule(segment, stored_rule(segment, graph), now, cause, parallel=parallel)
        for dependent in dependents_of(segment.pk, segments):
            apply_rule(dependent, stored_rule(dependent, graph), now, cause, parallel=parallel)
    return change


def dependents_of(segment_id: int, segments: list[Segment]) -> list[Segment]:
    """Rule-based segments that read this one, directly or not, in dependency order."""
    readers: set[int] = set()
    frontier = {segment_id}
    while frontier:
        frontier = {
            s.pk for s in segments if s.pk not in readers and frontier.intersection(s.depends_on)
        }
        readers |= frontier
    rule_based = [s for s in segments if s.pk in readers and not s.is_manual and s.rules]
    return dependency_order(rule_based)


# A person whose changes are not itemised (a manual edit, a new person): every segment asks.
EVERYTHING = None


def update_people(
    person_ids: Iterable[int], cause: str = Cause.INGEST, now: datetime | None = None
) -> dict[int, Change]:
    """Bring every rule-based segment up to date for these people (manual edits, imports)."""
    return update_touched(dict.fromkeys(person_ids, EVERYTHING), cause, now)


def update_touched(
    touched: Mapping[int, AbstractSet[str] | None], cause: str = Cause.INGEST,
    now: datetime | None = None,
) -> dict[int, Change]:  # fmt: skip
    """Bring the rule-based segments up to date for people whose changes touched some keys
    (rules.reads' keys: `attribute:plan`, `event:purchase`…; EVERYTHING for all of them).

    A segment is asked only about the people whose touched keys meet what its rule reads;
    people who entered or left a segment touch `segment:<id>` for the segments after it. A
    rule that also reads the clock may be stale for the people it is not asked about: the
    periodic sweep recomputes those. Segments that are asked about the same people are decided
    by one query (a row per person, a column per segment, shared subqueries once), then each
    segment writes only its differences for the people it was asked about (one statement for
    all the segments of a dependency level). The caller holds the account's writer lock (the
    drain does) or this takes it.
    """
    if not touched:
        return {}
    now = now or datetime.now(UTC)
    segments = list(Segment.objects.all())
    graph = graph_of(segments)
    # A stored rule that no longer reads (it cannot happen through the editor) is skipped and
    # logged: it must never make the drain refuse a batch.
    rule_based = [s for s in segments if not s.is_manual and s.rules is not None]
    rule_based = [s for s in rule_based if readable(s, graph)]
    if not rule_based:
        return {}
    touched = {
        person: keys if keys is EVERYTHING else set(keys) for person, keys in touched.items()
    }
    lock_account()
    changes: dict[int, Change] = {}
    for level in dependency_levels(rule_based):
        decided = {}
        for people, group in askers(level, graph, touched).items():
            decided.update(apply_rules(group, graph, now, list(people)))
        if not decided:
            continue
        level_changes = write_moves(level, now, cause, decided)
        changes.update(level_changes)
        for segment_id, change in level_changes.items():
            for person in change.moved:
                if touched[person] is not EVERYTHING:
                    touched[person].add(f"segment:{segment_id}")
    return changes


def askers(
    segments: list[Segment], graph: dict[int, list[int]],
    touched: Mapping[int, set[str] | None],
) -> dict[tuple[int, ...], list[Segment]]:  # fmt: skip
    """The segments grouped by the people they must be asked about (those none)."""
    by_reads: dict[frozenset[str], list[Segment]] = {}
    for segment in segments:
        keys = segment.reads
        if keys is None:
            keys = reads(stored_rule(segment, graph))
        by_reads.setdefault(frozenset(keys), []).append(segment)
    groups: dict[tuple[int, ...], list[Segment]] = {}
    for keys, readers in by_reads.items():
        people = tuple(
            sorted(p for p, t in touched.items() if t is EVERYTHING or not keys.isdisjoint(t))
        )
        if people:
            groups.setdefault(people, []).extend(readers)
    return groups


def dependency_levels(segments: list[Segment]) -> list[list[Segment]]:
    """Segments grouped so that each group reads only segments of earlier groups."""
    by_id = {segment.pk: segment for segment in segments}
    level: dict[int, int] = {}

    def depth(segment: Segment, path: frozenset[int]) -> int:
        if segment.pk not in level:
            reads = [by_id[t] for t in segment.depends_on if t in by_id and t not in path]
            level[segment.pk] = 1 + max((depth(s, path | {segment.pk}) for s in reads), default=-1)
        return level[segment.pk]

    for segment in segments:
        depth(segment, frozenset())
    return [[s for s in segments if level[s.pk] == n] for n in range(max(level.values()) + 1)]


def apply_rules(
    segments: list[Segment], graph: dict[int, list[int]], now: datetime, people: list[int]
) -> dict[int, tuple[list[int], list[int]]]:
    """Who of `people` matches each segment and who not, for segments asked about the same
    people: one query decides them all (a row per person, a column per segment)."""
    query = compile_rules([stored_rule(s, graph) for s in segments], now, people)
    ids = [s.pk for s in segments]
    matching: dict[int, list[int]] = {pk: [] for pk in ids}
    with connection.cursor() as cursor:
        cursor.execute(query.sql, query.params)
        for row in cursor.fetchall():
            for pk, matches in zip(ids, row[1:], strict=True):
                if matches:
                    matching[pk].append(row[0])
    # Who no longer matches, from Python: `NOT (id = ANY(matching))` in a DELETE compared
    # every member asked about with every matching id.
    return {pk: (sorted(matching[pk]), sorted(set(people).difference(matching[pk]))) for pk in ids}


# The membership (u.s, u.p), found by its primary key: whether there is one (index only), and
# its row. Scalar subqueries, so that every pair is a probe of the index whatever their number:
# written as joins, 40,000 pairs made the planner hash all 4,700,000 memberships of the
# benchmark's account instead (5 s).
PAIR = "m.segment_id = u.s AND m.person_id = u.p"
IS_MEMBER = f"SELECT true FROM {MEMBERSHIP} AS m WHERE {PAIR}"
MEMBERSHIP_ROW = f"SELECT m.ctid FROM {MEMBERSHIP} AS m WHERE {PAIR}"


def write_moves(
    segments: list[Segment], now: datetime, cause: str,
    decided: Mapping[int, tuple[list[int], list[int]]],
) -> dict[int, Change]:  # fmt: skip
    """For each segment, the people of its `decided` pair (matching, leaving) are members and
    those of the second not: one statement inserts who entered, deletes who left, logs both
    (one change set per segment from MASS_CHANGE moves on) and keeps the sizes of the
    segments that changed (record_size's two writes, for all of them)."""
    pairs: dict[bool, tuple[list[int], list[int]]] = {True: ([], []), False: ([], [])}
    for pk, (matching, leaving) in sorted(decided.items()):
        for member, ids in ((True, matching), (False, leaving)):
            pairs[member][0].extend([pk] * len(ids))
            pairs[member][1].extend(ids)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH entered AS (
                INSERT INTO {MEMBERSHIP} (segment_id, person_id, entered_at)
                SELECT u.s, u.p, %(now)s
                FROM unnest(%(in_segments)s::bigint[], %(in_people)s::bigint[]) AS u(s, p)
                WHERE ({IS_MEMBER}) IS NULL
                RETURNING segment_id, person_id
            ),
            exited AS (
                DELETE FROM {MEMBERSHIP} AS m WHERE m.ctid = ANY(ARRAY(
                    SELECT ({MEMBERSHIP_ROW})
                    FROM unnest(%(out_segments)s::bigint[], %(out_people)s::bigint[]) AS u(s, p)
                ))
                RETURNING m.segment_id, m.person_id
            ),
            moved AS MATERIALIZED (
                SELECT segment_id, person_id, false AS entered FROM exited
                UNION ALL SELECT segment_id, person_id, true FROM entered
            ),
            {LOG_MOVES},
            sized AS (
                UPDATE {SEGMENT} AS s
                SET member_count = s.member_count + counts.entered - counts.exited,
                    recomputed_at = %(now)s
                FROM counts WHERE s.id = counts.segment_id
                RETURNING s.id, s.member_count
            ),
            day AS (
                INSERT INTO {SIZE} (segment_id, day, size)
                SELECT id, %(day)s, member_count FROM sized
                ON CONFLICT (segment_id, day) DO UPDATE SET size = excluded.size
            )
            SELECT counts.segment_id, counts.entered, counts.exited, sized.member_count,
                   ARRAY(SELECT person_id FROM moved WHERE moved.segment_id = counts.segment_id)
            FROM counts JOIN sized ON sized.id = counts.segment_id
            """,
            {
                "now": now, "day": now.date(), "cause": cause, "mass": MASS_CHANGE,
                "chunk": CHUNK, "in_segments": id_array(pairs[True][0]),
                "in_people": id_array(pairs[True][1]),
                "out_segments": id_array(pairs[False][0]),
                "out_people": id_array(pairs[False][1]),
            },
        )  # fmt: skip
        rows = cursor.fetchall()
    by_id = {segment.pk: segment for segment in segments}
    changes = {}
    for pk, entered, exited, size, moved in rows:
        by_id[pk].member_count, by_id[pk].recomputed_at = size, now
        changes[pk] = Change(entered, exited, moved=set(moved))
    return changes


def sweep(now: datetime | None = None) -> dict[int, Change]:
    """Recompute the segments that change with time alone (and those that read them), and
    record every segment's size for today. Runs on the connection's current account."""
    now = now or datetime.now(UTC)
    lock_account()
    room_to_sort()
    segments = list(Segment.objects.all())
    graph = graph_of(segments)
    due: dict[int, Segment] = {s.pk: s for s in segments if s.time_dependent and s.rules}
    for segment in list(due.values()):
        due.update({d.pk: d for d in dependents_of(segment.pk, segments)})
    changes = {
        segment.pk: apply_rule(segment, stored_rule(segment, graph), now, Cause.SWEEP)
        for segment in dependency_order(due.values())
    }
    for segment in segments:
        if segment.pk not in changes:
            record_size(segment, now, 0, full=True)
    return changes


def change_members(
    segment: Segment, person_ids: Iterable[int], cause: str, *, add: bool = True,
    replace: bool = False, now: datetime | None = None,
) -> Change:  # fmt: skip
    """Add or remove people by hand (manual segments), or replace the whole list."""
    now = now or datetime.now(UTC)
    people = sorted(set(person_ids))
    lock_account()
    with connection.cursor() as cursor:
        if add:
            cursor.execute(
                f"""
                WITH entered AS (
                    INSERT INTO {MEMBERSHIP} (segment_id, person_id, entered_at)
                    SELECT %s, p.id, %s FROM segments_person AS p WHERE p.id = ANY(%s)
                    ON CONFLICT DO NOTHING RETURNING person_id
                ), exited AS (
                    DELETE FROM {MEMBERSHIP} AS m
                    WHERE %s AND m.segment_id = %s AND NOT (m.person_id = ANY(%s))
                    RETURNING person_id
                ), logged AS (
                    INSERT INTO {CHANGE} (segment_id, person_id, entered, at, cause)
                    SELECT %s, person_id, true, %s, %s FROM entered
                    UNION ALL SELECT %s, person_id, false, %s, %s FROM exited
                )
                SELECT ARRAY(SELECT person_id FROM entered), ARRAY(SELECT person_id FROM exited)
                """,
                [
                    segment.pk, now, people, replace, segment.pk, people,
                    segment.pk, now, cause, segment.pk, now, cause,
                ],
            )  # fmt: skip
        else:
            cursor.execute(
                f"""
                WITH exited AS (
                    DELETE FROM {MEMBERSHIP} AS m
                    WHERE m.segment_id = %s AND m.person_id = ANY(%s)
                    RETURNING person_id
                ), logged AS (
                    INSERT INTO {CHANGE} (segment_id, person_id, entered, at, cause)
                    SELECT %s, person_id, false, %s, %s FROM exited
                )
                SELECT ARRAY[]::bigint[], ARRAY(SELECT person_id FROM exited)
                """,
                [segment.pk, people, segment.pk, now, cause],
            )
        entered, exited = cursor.fetchone()
    change = Change(len(entered), len(exited))
    if change.entered or change.exited:
        record_size(segment, now, change.entered - change.exited)
        # Segments that read this one follow, for the people who moved.
        segments = list(Segment.objects.all())
        graph = graph_of(segments)
        for dependent in dependents_of(segment.pk, segments):
            rule = stored_rule(dependent, graph)
            apply_rule(dependent, rule, now, cause, [*entered, *exited])
    return change


# --- Reading the history --------------------------------------------------------------------


@dataclass
class HistoryEntry:
    """One line of a segment's or a person's membership history: one person's move, or many
    people's (a change set: `count` of them, a few named in `sample`)."""

    segment: Segment
    entered: bool
    at: datetime
    cause: str
    person: Person | None = None
    count: int = 1
    sample: list[Person] = field(default_factory=list)

    def get_cause_display(self) -> str:
        return Cause(self.cause).label


def recent_changes(segment: Segment, limit: int = 20, sample: int = 3) -> list[HistoryEntry]:
    """The segment's latest entries and exits, newest first. A change set shows a few people
    of the first chunk of each side: the change sets come with those chunks' ids (a probe of
    the chunks' primary key each), and all their people are read at once."""
    entries = [
        HistoryEntry(segment, c.entered, c.at, c.cause, person=c.person)
        for c in MembershipChange.objects.filter(segment=segment).select_related("person")[:limit]
    ]
    change_sets = list(
        MembershipChangeSet.objects.filter(segment=segment).annotate(
            first_in=first_chunk(entered=True), first_out=first_chunk(entered=False)
        )[:limit]
    )
    firsts = {
        (change_set.pk, entered): (ids or [])[: sample * 2]
        for change_set in change_sets
        for entered, ids in ((True, change_set.first_in), (False, change_set.first_out))
    }
    people = Person.objects.in_bulk({pk for ids in firsts.values() for pk in ids})
    for change_set in change_sets:
        for entered, count in ((True, change_set.entered), (False, change_set.exited)):
            if count:
                # A chunk's ids are sorted; people deleted since are left out.
                found = [people[pk] for pk in firsts[change_set.pk, entered] if pk in people]
                entry = HistoryEntry(segment, entered, change_set.at, change_set.cause)
                entry.count, entry.sample = count, found[:sample]
                entries.append(entry)
    entries.sort(key=lambda entry: entry.at, reverse=True)
    return entries[:limit]


def first_chunk(entered: bool) -> Subquery:
    """The ids of a change set's first chunk of entrants (or leavers)."""
    chunks = MembershipChangeChunk.objects.filter(change_set=OuterRef("pk"), entered=entered)
    return Subquery(chunks.order_by("first_person").values("people")[:1])


def history_of(
    person: Person, limit: int = 20, segments: Mapping[int, Segment] | None = None
) -> list[HistoryEntry]:
    """The person's entries and exits, newest first, from their own rows and the change sets
    whose chunks hold them (a chunk is found by its id range; one small array is read): one
    query, and one more for their segments unless the caller has them all (`segments`)."""
    fields = ("segment_id", "entered", "at", "cause")
    own = MembershipChange.objects.filter(person=person).order_by("-at").values_list(*fields)
    in_sets = (
        MembershipChangeChunk.objects.alias(span=ids_span())
        .filter(span__contains=person.pk, people__contains=[person.pk])
        .order_by("-change_set__at")
        .values_list("change_set__segment_id", "entered", "change_set__at", "change_set__cause")
    )
    rows = list(own[:limit].union(in_sets[:limit], all=True).order_by())
    if segments is None:
        segments = Segment.objects.in_bulk({segment_id for segment_id, *_ in rows})
    entries = [
        HistoryEntry(segments[segment_id], entered, at, cause, person=person)
        for segment_id, entered, at, cause in rows
        if segment_id in segments  # a segment deleted since takes its history with it
    ]
    entries.sort(key=lambda entry: entry.at, reverse=True)
    return entries[:limit]
