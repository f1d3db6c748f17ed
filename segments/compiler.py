"""A rule tree compiled to one parameterised SQL query over the account's tables.

The query selects `p.id` from the people table. Every event, email and segment condition is a
LEFT JOIN of one aggregated subquery (a count per person), so the WHERE clause is a plain
boolean expression over the person's row and those counts: groups and NOT need no subquery
tricks, and every leaf is wrapped so that it is true or false, never NULL, which is what makes
NOT mean what the evaluator means by `not`.

Nothing from a rule is ever spliced into the SQL text: attribute and property names, values,
event names and segment ids all travel as parameters (`p.attributes -> %s`). The only names
in the text are our own tables, columns and aliases.

`people` restricts the query (and every subquery, so that indexes on person_id answer) to some
people: the ingestion drain asks only about the people its batch touched.
"""

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from segments.rules import (
    NUMBER_PATTERN,
    TIME_PATTERN,
    AttributeCondition,
    Comparison,
    EmailCondition,
    EventCondition,
    Group,
    Node,
    Occurrence,
    SegmentCondition,
    SubscriptionCondition,
    Window,
    epoch_seconds,
    parse_time,
)

PERSON = "segments_person"
EVENT = "segments_event"
SUMMARY = "segments_activitysummary"
MEMBERSHIP = "segments_membership"
# Email activity reads messaging's deliveries: one row per message to a person, with the first
# time of each activity (null until it happens). Test sends are not activity.
DELIVERY = "messaging_delivery"
DELIVERY_COLUMNS = {
    "sent": "sent_at",
    "delivered": "delivered_at",
    "opened": "opened_at",
    "clicked": "clicked_at",
    "bounced": "bounced_at",
}


@dataclass
class Query:
    sql: str
    params: list[Any]

    def named(self, prefix: str = "q") -> tuple[str, dict[str, Any]]:
        """The same query with named placeholders (`%(q0)s`…), to embed in a statement that
        names its own parameters."""
        parts = self.sql.split("%s")
        assert len(parts) == len(self.params) + 1 and "%%" not in self.sql
        names = [f"{prefix}{n}" for n in range(len(self.params))]
        pieces = zip(names, parts[1:], strict=True)
        sql = parts[0] + "".join(f"%({name})s{part}" for name, part in pieces)
        return sql, dict(zip(names, self.params, strict=True))


def id_array(ids: Iterable[int]) -> str:
    """Ids as one PostgreSQL array literal (`%s::bigint[]`): psycopg's own adaptation of a list
    is written in Python, element by element, and a drained batch passes tens of thousands."""
    return "{" + ",".join(map(str, ids)) + "}"


@dataclass
class Compiler:
    now: datetime
    people: list[int] | None = None
    joins: list[str] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)  # of the joins, in order
    aliases: dict[str, str] = field(default_factory=dict)
    # Each joined subquery (alias, SQL, parameters), for activity_query's shape.
    subqueries: list[tuple[str, str, list[Any]]] = field(default_factory=list)
    # Each event, email or segment condition's alias and true-or-false SQL (by id of node).
    leaves: dict[int, tuple[str, str, list[Any]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.people_array = None if self.people is None else id_array(self.people)

    def compile(self, node: Node) -> Query:
        where, where_params = self.node(node)
        scope = ""
        scope_params: list[Any] = []
        if self.people is not None:
            scope, scope_params = "p.id = ANY(%s::bigint[]) AND ", [self.people_array]
        sql = f"SELECT p.id FROM {PERSON} AS p {' '.join(self.joins)} WHERE {scope}{where}"
        return Query(sql, [*self.params, *scope_params, *where_params])

    def node(self, node: Node) -> tuple[str, list[Any]]:
        if isinstance(node, Group):
            parts = [self.node(child) for child in node.children]
            joiner = " AND " if node.op == "and" else " OR "
            sql = "(" + joiner.join(part for part, _ in parts) + ")"
            params = [param for _, part_params in parts for param in part_params]
            return (f"NOT {sql}" if node.op == "not" else sql), params
        if isinstance(node, AttributeCondition):
            return comparison("p.attributes", node.comparison, self.now)
        if isinstance(node, SubscriptionCondition):
            return "(p.unsubscribed = %s)", [not node.subscribed]
        if isinstance(node, SegmentCondition):
            alias = self.join(
                f"SELECT m.person_id FROM {MEMBERSHIP} AS m WHERE m.segment_id = %s",
                [node.segment], "m.person_id",
            )  # fmt: skip
            sql, params = f"({alias}.person_id IS {'NOT ' if node.member else ''}NULL)", []
        elif isinstance(node, EventCondition):
            alias, (sql, params) = self.event(node)
        else:
            alias, (sql, params) = self.email(node)
        self.leaves[id(node)] = (alias, sql, params)
        return sql, params

    def compile_many(self, nodes: list[Node]) -> Query:
        """One row per person: the id, then whether each rule matches (true or false)."""
        columns = [self.node(node) for node in nodes]
        select = ", ".join(sql for sql, _ in columns)
        sql = f"SELECT p.id, {select} FROM {PERSON} AS p {' '.join(self.joins)}"
        params = [param for _, column_params in columns for param in column_params]
        scope: list[Any] = []
        if self.people is not None:
            sql += " WHERE p.id = ANY(%s::bigint[])"
            scope = [self.people_array]
        return Query(sql, [*params, *self.params, *scope])

    def join(self, subquery: str, params: list[Any], person_column: str) -> str:
        """LEFT JOIN a subquery with at most one row per person; returns its alias.

        Rules compiled together share a subquery they both need (the same event count).

        For some people (a drained batch's, the editor's sample), the subquery is asked about
        each person in turn (LATERAL, an index probe by person): filtered by the whole list
        instead, the planner often read every event of the name in the window (150,000 of
        `signed_in` in 7 days) to keep those of 5,500 people, 30 ms against 15 ms probed."""
        key = repr((subquery, params))
        if key in self.aliases:
            return self.aliases[key]
        alias = f"j{len(self.joins)}"
        self.aliases[key] = alias
        if self.people is None:
            self.joins.append(f"LEFT JOIN ({subquery}) AS {alias} ON {alias}.person_id = p.id")
        else:
            grouped = f" GROUP BY {person_column}"
            if subquery.endswith(grouped):  # one person's count: no groups, 0 for no rows
                subquery = subquery.removesuffix(grouped)
                subquery = subquery.replace(f"SELECT {person_column}, ", "SELECT ", 1)
                limit = ""
            else:
                # A row by primary key (a membership, a summary). LIMIT keeps it a probe: as a
                # plain join the planner merged the people with all 114,000 members of the
                # segment read, 10 ms for 2,000 people against 3 ms probed.
                limit = " LIMIT 1"
            subquery = subquery.replace(" WHERE ", f" WHERE {person_column} = p.id AND ", 1)
            self.joins.append(f"LEFT JOIN LATERAL ({subquery}{limit}) AS {alias} ON true")
        self.params.extend(params)
        self.subqueries.append((alias, subquery, params))
        return alias

    def event(self, node: EventCondition) -> tuple[str, tuple[str, list[Any]]]:
        if node.window is None and not node.filters:
            # Counts over all time are kept per person and name by the drain. Whether someone
            # performed it at all needs no count (a summary exists only once an event has), so
            # that reads the (name, person) index alone; the count is in the table, not the
            # index, so that the drain's summary updates are HOT.
            existence = node.occurrence.operator in ("performed", "not_performed")
            count = "1" if existence else "s.count"
            alias = self.join(
                f"SELECT s.person_id, {count} AS n FROM {SUMMARY} AS s WHERE s.name = %s",
                [node.name], "s.person_id",
            )  # fmt: skip
            return alias, occurrence(alias, node.occurrence)
        conditions = ["e.person_id IS NOT NULL", "e.name = %s"]
        params: list[Any] = [node.name]
        window_sql, window_params = window("e.timestamp", node.window, self.now)
        conditions += window_sql
        params += window_params
        for item in node.filters:
            sql, filter_params = comparison("e.data", item, self.now)
            conditions.append(sql)
            params += filter_params
        alias = self.join(
            f"SELECT e.person_id, count(*) AS n FROM {EVENT} AS e "
            f"WHERE {' AND '.join(conditions)} GROUP BY e.person_id",
            params, "e.person_id",
        )  # fmt: skip
        return alias, occurrence(alias, node.occurrence)

    def email(self, node: EmailCondition) -> tuple[str, tuple[str, list[Any]]]:
        column = f"d.{DELIVERY_COLUMNS[node.activity]}"
        window_sql, params = window(column, node.window, self.now)
        conditions = [
            "d.person_id IS NOT NULL", "NOT d.is_test", f"{column} IS NOT NULL", *window_sql
        ]  # fmt: skip
        alias = self.join(
            f"SELECT d.person_id, count(*) AS n FROM {DELIVERY} AS d "
            f"WHERE {' AND '.join(conditions)} GROUP BY d.person_id",
            params, "d.person_id",
        )  # fmt: skip
        return alias, occurrence(alias, node.occurrence)

    def drivers(self, node: Node) -> list[tuple[str, str | None, list[Any]]]:
        """Subqueries, each with the condition its rows must meet (None: any row), whose
        people together include everyone a rule that requires activity matches (compiled
        already). An AND group needs one child's; an OR group every child's."""
        if isinstance(node, Group) and node.op == "and":
            return self.drivers(next(c for c in node.children if requires_activity(c)))
        if isinstance(node, Group) and node.op == "or":
            return [driver for child in node.children for driver in self.drivers(child)]
        if isinstance(node, Group):  # NOT, of activity alone: a row in any of its subqueries
            return [(self.leaves[id(leaf)][0], None, []) for leaf in activity_leaves(node)]
        alias, sql, params = self.leaves[id(node)]
        return [(alias, sql, params)]


def compile_rule(node: Node, now: datetime, people: list[int] | None = None) -> Query:
    """SELECT p.id of everyone (or of `people`) the rule matches at `now`.

    For everyone, a rule that matches nobody without activity is driven by its subqueries
    (see activity_query)."""
    if people is None and requires_activity(node):
        return activity_query(node, now)
    return Compiler(now, people).compile(node)


def activity_query(node: Node, now: datetime) -> Query:
    """SELECT id of everyone the rule matches, driven by its subqueries (events, email
    activity, other segments) instead of by every person of the account: everyone a rule that
    requires activity matches has a row in one of them (and rows of deleted people are
    deleted with them). An AND group is driven by one child that requires activity, with that
    child's own condition: "purchased at least twice in the last 30 days and seats is not 3"
    starts from the 44,000 people with two purchases, not from the 284,000 with one or from
    every person (a full recompute of the event condition alone spent 1.9 of its 2.1 seconds
    joining 1,000,000 people to the counts). People's rows are read only if the rule reads
    them, by primary key."""
    compiler = Compiler(now)
    where, where_params = compiler.node(node)
    drivers = compiler.drivers(node)
    if len(drivers) == 1:
        return driven_by(compiler, drivers[0][0], reads_person(node), where, where_params)
    if union_of_conditions(node):  # "in segment A or performed upgraded": who is in either
        selects, params = [], []
        for alias, condition, condition_params in drivers:
            sql, sub_params = next((q, p) for a, q, p in compiler.subqueries if a == alias)
            selects.append(
                f"SELECT {alias}.person_id AS id FROM ({sql}) AS {alias} WHERE {condition}"
            )
            params += [*sub_params, *condition_params]
        return Query(" UNION ".join(selects), params)
    ctes = ", ".join(f"{alias} AS MATERIALIZED ({sql})" for alias, sql, _ in compiler.subqueries)
    params = [param for _, _, cte_params in compiler.subqueries for param in cte_params]
    driving = []
    for alias, condition, condition_params in drivers:
        driving.append(f"SELECT {alias}.person_id AS id FROM {alias}")
        if condition is not None:
            driving[-1] += f" WHERE {condition}"
            params += condition_params
    people = f"({' UNION '.join(driving)}) AS p"
    if reads_person(node):
        people = f"({' UNION '.join(driving)}) AS d JOIN {PERSON} AS p ON p.id = d.id"
    joins = " ".join(
        f"LEFT JOIN {alias} ON {alias}.person_id = p.id" for alias, _, _ in compiler.subqueries
    )
    return Query(
        f"WITH {ctes} SELECT p.id FROM {people} {joins} WHERE {where}", [*params, *where_params]
    )


def compile_rules(nodes: list[Node], now: datetime, people: list[int] | None = None) -> Query:
    """SELECT p.id, matches_1, matches_2, … for everyone (or for `people`)."""
    return Compiler(now, people).compile_many(nodes)


def count_query(node: Node, now: datetime) -> Query:
    """How many people the rule matches (the editor's live count).

    A rule that reads nothing of the person's own row (only events, email activity and other
    segments) and that nobody without any of those matches is counted from its subqueries
    alone (compile_rule's activity_query): everyone it matches has a row in one of them. That
    skips joining every person of the account to an aggregate, which is most of the time of a
    count like "purchased at least twice in the last 30 days"."""
    query = compile_rule(node, now)
    return Query(f"SELECT count(*) FROM ({query.sql}) AS matching", query.params)


def count_matching(node: Node, now: datetime) -> int:
    """Run count_query; its aggregates get room enough not to spill to disk (the editor
    counts every few keystrokes, and one count is one query), and it joins whole sets without
    nested loops (see membership.decide_apart: a segment saved a moment ago is "1 row" to the
    planner until its statistics catch up)."""
    from django.db import connection, transaction

    query = count_query(node, now)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL work_mem = '64MB'")
        cursor.execute("SET LOCAL enable_nestloop = off")
        cursor.execute(query.sql, query.params)
        return cursor.fetchone()[0]


def reads_person(node: Node) -> bool:
    if isinstance(node, Group):
        return any(reads_person(child) for child in node.children)
    return isinstance(node, AttributeCondition | SubscriptionCondition)


def driven_by(
    compiler: Compiler, alias: str, person: bool, where: str, where_params: list[Any]
) -> Query:
    """The rule's query driven by one of its subqueries, whose condition is part of `where`
    (a conjunct): no subquery read twice, and that condition is pushed into the subquery."""
    subqueries = {a: (sql, params) for a, sql, params in compiler.subqueries}
    sql, params = subqueries.pop(alias)
    person_id = "p.id" if person else f"{alias}.person_id"
    joins = [f"FROM ({sql}) AS {alias}"]
    if person:
        joins.append(f"JOIN {PERSON} AS p ON p.id = {alias}.person_id")
    for other, (other_sql, other_params) in subqueries.items():
        joins.append(f"LEFT JOIN ({other_sql}) AS {other} ON {other}.person_id = {person_id}")
        params = [*params, *other_params]
    return Query(
        f"SELECT {person_id} AS id {' '.join(joins)} WHERE {where}", [*params, *where_params]
    )


def union_of_conditions(node: Node) -> bool:
    """Is the rule an OR of event, email or segment conditions that each require activity
    (or of such ORs)? Then its drivers decide it whole."""
    if isinstance(node, Group):
        return node.op == "or" and all(union_of_conditions(child) for child in node.children)
    return requires_activity(node)


def requires_activity(node: Node) -> bool:
    """Does everyone the rule matches have a row in one of its subqueries (events, email
    activity, another segment's members), whatever their attributes?"""
    if isinstance(node, Group) and node.op == "and":
        return any(requires_activity(child) for child in node.children)
    if isinstance(node, Group) and node.op == "or":
        return all(requires_activity(child) for child in node.children)
    if isinstance(node, Group):  # NOT: decided for people without activity, if it reads no one
        return not reads_person(node) and not matches_without_activity(node)
    if isinstance(node, AttributeCondition | SubscriptionCondition):
        return False
    return not matches_without_activity(node)


def activity_leaves(node: Node) -> list[Node]:
    """The rule's event, email and segment conditions."""
    if isinstance(node, Group):
        return [leaf for child in node.children for leaf in activity_leaves(child)]
    if isinstance(node, AttributeCondition | SubscriptionCondition):
        return []
    return [node]


def matches_without_activity(node: Node) -> bool:
    """Does the rule match someone with no events, no email activity and no segments?"""
    if isinstance(node, Group):
        answers = [matches_without_activity(child) for child in node.children]
        return (
            all(answers)
            if node.op == "and"
            else any(answers)
            if node.op == "or"
            else (not any(answers))
        )
    if isinstance(node, EventCondition | EmailCondition):
        return node.occurrence.holds(0)
    assert isinstance(node, SegmentCondition)
    return not node.member


def occurrence(alias: str, occurrence: Occurrence) -> tuple[str, list[Any]]:
    n = f"COALESCE({alias}.n, 0)"
    match occurrence.operator:
        case "performed":
            return f"({n} >= 1)", []
        case "not_performed":
            return f"({n} = 0)", []
        case "at_least":
            return f"({n} >= %s)", [occurrence.count]
        case "at_most":
            return f"({n} <= %s)", [occurrence.count]
        case _:
            return f"({n} = %s)", [occurrence.count]


def window(column: str, window: Window | None, now: datetime) -> tuple[list[str], list[Any]]:
    if window is None:
        return [], []
    start, end = window.bounds(now)
    if end is None:  # "within the last N days": up to now, not beyond
        return [f"{column} >= %s", f"{column} <= %s"], [start, now]
    return [f"{column} >= %s", f"{column} < %s"], [start, end]


# --- Attribute and property comparisons -----------------------------------------------------


def number(value: Any) -> Decimal:
    """A rule's number as an exact decimal (floats by their shortest spelling)."""
    return value if isinstance(value, Decimal) else Decimal(repr(value))


def text(value: Any) -> str:
    """A rule's string or boolean as the text it compares with."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def plain_text(value: Any) -> bool:
    """A string that no JSON number or boolean spells as text (no digit, not true or false):
    a value whose text equals it can only be that JSON string."""
    return (
        isinstance(value, str)
        and value not in ("true", "false")
        and not any(ch.isdigit() for ch in value)
    )


def comparison(column: str, c: Comparison, now: datetime) -> tuple[str, list[Any]]:
    """A true-or-false SQL expression comparing `column -> name` (a jsonb value)."""
    name = c.name
    value_ = f"{column} -> %s"
    raw = f"{column} ->> %s"
    # The text of a scalar; NULL for a missing key, null, an object or an array.
    text_sql = (
        f"(CASE WHEN jsonb_typeof({value_}) IN ('string', 'number', 'boolean') THEN {raw} END)"
    )
    text_params = [name, name]
    # The number of a JSON number or of a string spelling one. A JSON number is cast as it
    # is (jsonb keeps it as a numeric), not printed and parsed again.
    number_sql = (
        f"(CASE jsonb_typeof({value_}) WHEN 'number' THEN ({value_})::numeric "
        f"WHEN 'string' THEN CASE WHEN {raw} ~ %s THEN ({raw})::numeric END END)"
    )
    number_params = [name, name, name, NUMBER_PATTERN, name]
    # The time of a value, in unix seconds: its number, or an ISO-8601 string's moment.
    time_sql = (
        f"(CASE jsonb_typeof({value_}) WHEN 'number' THEN ({value_})::numeric "
        f"WHEN 'string' THEN CASE WHEN {raw} ~ %s THEN ({raw})::numeric "
        f"WHEN {raw} ~ %s AND pg_input_is_valid({raw}, 'timestamptz') "
        f"THEN extract(epoch FROM ({raw})::timestamptz) END END)"
    )
    time_params = [name, name, name, NUMBER_PATTERN, name, name, TIME_PATTERN, name, name]

    def equals(value: Any) -> tuple[str, list[Any]]:
        if plain_text(value):
            # Only the JSON string itself has this text: one containment test, which reads
            # the value once instead of three times (and which the people's GIN index answers).
            return f"({column} @> %s::jsonb)", [json.dumps({name: value})]
        if isinstance(value, str | bool):
            return f"{text_sql} = %s", [*text_params, text(value)]
        return f"{number_sql} = %s", [*number_params, number(value)]

    match c.operator:
        case "exists":
            return f"({column} ? %s)", [name]
        case "not_exists":
            return f"(NOT ({column} ? %s))", [name]
        case "equals":
            sql, params = equals(c.value)
        case "not_equals":
            sql, params = equals(c.value)
            return f"(NOT COALESCE({sql}, false))", params
        case "in" if all(plain_text(v) for v in c.value):
            sql = f"({column} @> ANY(%s::jsonb[]))"
            params = [[json.dumps({name: v}) for v in c.value]]
        case "in":
            texts = [text(v) for v in c.value if isinstance(v, str | bool)]
            numbers = [number(v) for v in c.value if not isinstance(v, str | bool)]
            sql = f"({text_sql} = ANY(%s::text[]) OR {number_sql} = ANY(%s::numeric[]))"
            params = [*text_params, texts, *number_params, numbers]
        case "contains":
            sql, params = f"strpos({text_sql}, %s) > 0", [*text_params, c.value]
        case "starts_with":
            sql, params = f"starts_with({text_sql}, %s)", [*text_params, c.value]
        case "greater_than":
            sql, params = f"{number_sql} > %s", [*number_params, number(c.value)]
        case "less_than":
            sql, params = f"{number_sql} < %s", [*number_params, number(c.value)]
        case "between":
            low, high = (number(v) for v in c.value)  # low <= high (segments.rules checks)
            sql, params = within(number_sql, number_params, low, high)
        case "before" | "after":
            moment = epoch_seconds(parse_time(c.value))
            sign = "<" if c.operator == "before" else ">"
            sql, params = f"{time_sql} {sign} %s", [*time_params, moment]
        case "within_last_days":
            since = epoch_seconds(now - timedelta(days=c.value))  # days >= 1: since < now
            sql, params = within(time_sql, time_params, since, epoch_seconds(now))
        case _:  # more_than_days_ago
            before = epoch_seconds(now - timedelta(days=c.value))
            sql, params = f"{time_sql} < %s", [*time_params, before]
    return f"COALESCE({sql}, false)", params


def within(
    value_sql: str, value_params: list[Any], low: Decimal, high: Decimal
) -> tuple[str, list[Any]]:
    """`low <= value <= high`, with the value computed once: BETWEEN repeats its expression
    for each bound, and a typed attribute's expression (above) is most of a full scan's work
    when a rule reads attributes (a time read from a string costs two pattern matches and
    two parses). The range is a constant; `low` must not be above `high`."""
    return f"(numrange(%s, %s, '[]') @> {value_sql})", [low, high, *value_params]


# --- The editor's estimate ------------------------------------------------------------------

# Below this many people an exact count is quick enough to be the first answer.
ESTIMATE_FROM = 200_000
# About this many people are sampled (whole table pages, the same pages every time, so that
# the estimate moves with the rule and not with the sample).
ESTIMATE_SAMPLE = 5_000


@dataclass
class Estimate:
    count: int
    sampled: int
    matching: list[int]  # the first few sampled people who match
    # Where the exact count most likely is (about two standard deviations of the sample's
    # count either side; with no match in the sample, up to three: the rule of three).
    low: int = 0
    high: int = 0


def estimate_matching(node: Node, now: datetime) -> Estimate | None:
    """About how many people the rule matches, from a sample; None where the exact count is
    the quicker answer (a small account). The rule is decided for the sampled people only, as
    the drain decides it for a batch's people (every subquery narrowed to them by index), and
    their share is scaled to the planner's count of people."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT reltuples FROM pg_class WHERE oid = '{PERSON}'::regclass")
        people = cursor.fetchone()[0]
        if people < ESTIMATE_FROM:
            return None
        cursor.execute(
            f"SELECT array_agg(id) FROM {PERSON} TABLESAMPLE SYSTEM (%s) REPEATABLE (5)",
            [min(100.0, 100.0 * ESTIMATE_SAMPLE / people)],
        )
        sampled = cursor.fetchone()[0] or []
        if not sampled:
            return None
        query = compile_rule(node, now, sampled)
        cursor.execute(
            f"SELECT count(*), (array_agg(id ORDER BY id))[1:20] FROM ({query.sql}) AS matching",
            query.params,
        )
        matched, first = cursor.fetchone()
    scale = people / len(sampled)
    spread = 2 * math.sqrt(matched) if matched else 3
    return Estimate(
        rounded(matched * scale), len(sampled), first or [],
        low=rounded(max(0.0, matched - spread) * scale),
        high=rounded(min(len(sampled), matched + spread) * scale),
    )  # fmt: skip


def rounded(count: float) -> int:
    """Two significant figures: an estimate that looks no more precise than it is."""
    if count < 100:
        return round(count)
    step = 10 ** (len(str(int(count))) - 2)
    return int(round(count / step) * step)
