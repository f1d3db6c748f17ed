"""The compiled SQL and the Python reference agree on every person, for random rules and data.

Hypothesis writes people, events, activity summaries, memberships and email deliveries
(messaging's table) into acme's schema (inside a savepoint rolled back after each example), then
asks both implementations.
"""

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection, transaction
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from messaging.models import Delivery
from segments.compiler import (
    DELIVERY_COLUMNS,
    compile_rule,
    compile_rules,
    count_query,
    reads_person,
    requires_activity,
)
from segments.evaluator import EventRecord, PersonRecord, matches
from segments.models import ActivitySummary, Event, Membership, Person, Segment
from segments.rules import (
    ATTRIBUTE_OPERATORS,
    COUNT_OPERATORS,
    EMAIL_ACTIVITIES,
    Context,
    parse_rule,
    parse_time,
)

pytestmark = pytest.mark.django_db

NOW = datetime(2025, 6, 15, 12, 0, 0, 250_000, tzinfo=UTC)
NAMES = ["plan", "age"]
EVENT_NAMES = ["login", "purchase"]
PROPERTIES = ["price", "when"]

small_text = st.text(alphabet="ab1", max_size=3)
numeric_text = st.from_regex(r"-?[0-2](\.[05]0?)?", fullmatch=True)
any_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=6
)
numbers = st.one_of(
    st.integers(-2, 2),
    st.integers(-2, 2),
    st.sampled_from([0.5, 1.0, -0.0, 2.0]),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.5, -0.0, 1e16, 1.5e-7, 2.50, 100.0]),
)
# Mostly whole days and hours around NOW, so that window edges are hit exactly.
moments = st.one_of(
    st.builds(
        lambda days, hours: NOW.replace(hour=0, microsecond=0) - timedelta(days=days, hours=hours),
        st.integers(-5, 100),
        st.sampled_from([0, 12]),
    ),
    st.integers(0, 100).map(lambda days: NOW - timedelta(days=days)),
    st.datetimes(
        min_value=datetime(2025, 3, 1), max_value=datetime(2025, 7, 1), timezones=st.just(UTC)
    ),
)


@st.composite
def time_texts(draw) -> str:
    moment = draw(moments)
    form = draw(st.sampled_from(["date", "z", "offset", "fraction", "naive", "bad"]))
    if form == "date":
        return moment.strftime("%Y-%m-%d")
    if form == "z":
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    if form == "offset":
        return moment.strftime("%Y-%m-%dT%H:%M") + draw(st.sampled_from(["+05:30", "-0800"]))
    if form == "fraction":
        return moment.strftime("%Y-%m-%d %H:%M:%S.%f")[: draw(st.integers(21, 26))] + "Z"
    if form == "naive":
        return moment.strftime("%Y-%m-%dT%H:%M:%S")
    return draw(st.sampled_from(["2025-02-30", "2025-13-01", "2025-06-01T24:00", "soon"]))


scalars = st.one_of(small_text, numeric_text, numbers, st.booleans(), time_texts())
json_values = st.recursive(
    st.one_of(scalars, scalars, scalars, st.none(), any_text, moments.map(lambda m: m.timestamp())),
    lambda inner: st.one_of(
        st.lists(inner, max_size=2), st.dictionaries(small_text, inner, max_size=2)
    ),
    max_leaves=3,
)


@st.composite
def comparisons(draw, key: str, names: list[str]) -> dict:
    operator = draw(st.sampled_from(ATTRIBUTE_OPERATORS))
    data = {key: draw(st.sampled_from(names)), "operator": operator}
    if operator in ("equals", "not_equals"):
        data["value"] = draw(scalars)
    elif operator == "in":
        data["value"] = draw(st.lists(scalars, min_size=1, max_size=3))
    elif operator in ("contains", "starts_with"):
        data["value"] = draw(small_text.filter(bool))
    elif operator in ("greater_than", "less_than"):
        data["value"] = draw(numbers)
    elif operator == "between":
        data["value"] = sorted(draw(st.lists(numbers, min_size=2, max_size=2)))
    elif operator in ("before", "after"):
        data["value"] = draw(
            time_texts().filter(
                lambda t: (
                    t[:4].isdigit() and "-02-30" not in t and "-13-" not in t and "24:00" not in t
                )
            )
        )
    elif operator in ("within_last_days", "more_than_days_ago"):
        data["value"] = draw(st.integers(1, 120))
    return data


@st.composite
def event_conditions(draw) -> dict:
    data = draw(counted({"type": "event", "name": draw(st.sampled_from(EVENT_NAMES))}))
    if draw(st.booleans()):
        data["filters"] = draw(st.lists(comparisons("property", PROPERTIES), max_size=2))
    return data


@st.composite
def email_conditions(draw) -> dict:
    return draw(counted({"type": "email", "activity": draw(st.sampled_from(EMAIL_ACTIVITIES))}))


@st.composite
def counted(draw, data: dict) -> dict:
    """How often, and when: the part event and email conditions share."""
    data = dict(data)
    operator = draw(st.sampled_from(COUNT_OPERATORS))
    data["operator"] = operator
    if operator not in ("performed", "not_performed"):
        data["count"] = draw(st.integers(1 if operator == "at_least" else 0, 3))
    window = draw(st.sampled_from(["none", "days", "dates"]))
    if window == "days":
        data["within_days"] = draw(st.integers(1, 90))
    elif window == "dates":
        start = draw(moments)
        data["from"] = start.strftime("%Y-%m-%d")
        data["to"] = (start + timedelta(days=draw(st.integers(0, 60)))).strftime("%Y-%m-%d")
    return data


attribute_conditions = comparisons("name", NAMES).map(lambda c: {"type": "attribute", **c})
leaves = st.one_of(
    attribute_conditions,
    attribute_conditions,
    attribute_conditions,
    event_conditions(),
    event_conditions(),
    email_conditions(),
    st.sampled_from(["subscribed", "unsubscribed"]).map(
        lambda s: {"type": "subscription", "state": s}
    ),
    st.tuples(st.sampled_from([0, 1]), st.sampled_from(["in", "not_in"])).map(
        lambda t: {"type": "segment", "segment": t[0], "operator": t[1]}
    ),
)
trees = st.recursive(
    leaves,
    lambda children: st.builds(
        lambda op, kids: {"type": "group", "op": op, "children": kids},
        st.sampled_from(["and", "or", "not"]),
        st.lists(children, min_size=1, max_size=3),
    ),
    max_leaves=6,
)


def needs_activity(condition: dict) -> bool:
    operator, count = condition["operator"], condition.get("count", 1)
    return operator == "performed" or (operator in ("at_least", "exactly") and count >= 1)


# Rules that match only people with activity, whatever else they read: a full recompute is
# driven by their subqueries (compiler.activity_query), so they get draws of their own.
requiring = st.one_of(
    event_conditions().filter(needs_activity),
    email_conditions().filter(needs_activity),
    st.sampled_from([0, 1]).map(lambda n: {"type": "segment", "segment": n, "operator": "in"}),
)
active_trees = st.recursive(
    requiring,
    lambda children: st.one_of(
        st.builds(
            lambda kids, other: {"type": "group", "op": "and", "children": [*kids, other]},
            st.lists(children, min_size=1, max_size=2),
            trees,
        ),
        st.builds(
            lambda kids: {"type": "group", "op": "or", "children": kids},
            st.lists(children, min_size=1, max_size=3),
        ),
    ),
    max_leaves=5,
)


def edge_values(tree: dict) -> tuple[list, list]:
    """Values and moments at the edges of the tree's conditions, where mistakes show."""
    values: list = []
    times: list[datetime] = []

    def visit(node: dict) -> None:
        for child in node.get("children", []):
            visit(child)
        for item in [node, *node.get("filters", [])]:
            value = item.get("value")
            for v in value if isinstance(value, list) else [value]:
                if isinstance(v, bool) or v is None:
                    values.append(v)
                elif isinstance(v, int | float):
                    values.extend([v, str(v), v + 1, v - 1, float(v)])
                elif isinstance(v, str):
                    values.extend([v, v + "a", "b" + v])
                    moment = parse_time(v)
                    if moment:
                        values.extend([moment.timestamp(), moment.isoformat()])
                        times.append(moment)
            if item.get("operator") in ("within_last_days", "more_than_days_ago"):
                edge = NOW - timedelta(days=item["value"])
                values.extend([edge.timestamp(), edge.isoformat(), int(edge.timestamp())])
        if node.get("within_days"):
            times.append(NOW - timedelta(days=node["within_days"]))
        for key in ("from", "to"):
            if key in node:
                times.append(parse_time(node[key]))
                times.append(parse_time(node[key]) + timedelta(days=1))

    visit(tree)
    return values, times


def people_for(tree: dict):
    values, times = edge_values(tree)
    value = st.one_of(json_values, st.sampled_from(values)) if values else json_values
    moment = st.one_of(moments, st.sampled_from(times)) if times else moments
    events = st.lists(
        st.tuples(
            st.sampled_from(EVENT_NAMES),
            moment,
            st.dictionaries(st.sampled_from(PROPERTIES), value, max_size=2),
        ),
        max_size=5,
    )
    # Each delivery: the first time of every activity (or never), and whether a test send.
    deliveries = st.lists(
        st.tuples(
            st.fixed_dictionaries(
                {column: st.one_of(st.none(), moment) for column in DELIVERY_COLUMNS.values()}
            ),
            st.sampled_from([False, False, False, True]),
        ),
        max_size=3,
    )
    return st.lists(
        st.tuples(
            st.dictionaries(st.sampled_from(NAMES), value, max_size=2),
            st.booleans(),
            events,
            st.tuples(st.booleans(), st.booleans()),
            deliveries,
        ),
        min_size=1,
        max_size=8,
    )


def with_segment_ids(tree: dict, ids: list[int]) -> dict:
    if tree["type"] == "segment":
        return {**tree, "segment": ids[tree["segment"]]}
    if tree["type"] == "group":
        return {**tree, "children": [with_segment_ids(c, ids) for c in tree["children"]]}
    return tree


def store(rows) -> tuple[list[int], dict[int, set[int]]]:
    """The generated people in the database; returns segment ids and their members."""
    stamp = NOW - timedelta(days=1)
    segments = [Segment.objects.create(name=f"s{n}", kind="manual") for n in range(2)]
    members: dict[int, set[int]] = {s.pk: set() for s in segments}
    serial = 0
    for n, (attributes, unsubscribed, person_events, membership, deliveries) in enumerate(rows):
        person = Person.objects.create(
            customer_id=f"p{n}", attributes=attributes, unsubscribed=unsubscribed,
            created_at=stamp, updated_at=stamp,
        )  # fmt: skip
        for segment, member in zip(segments, membership, strict=True):
            if member:
                Membership.objects.create(segment=segment, person=person, entered_at=stamp)
                members[segment.pk].add(person.pk)
        for name, timestamp, data in person_events:
            serial += 1
            Event.objects.create(
                person=person, name=name, data=data, timestamp=timestamp, received_at=stamp,
                dedupe_key=f"e{serial}",
            )  # fmt: skip
        for times, is_test in deliveries:
            Delivery.objects.create(person=person, email=f"p{n}@example.com", is_test=is_test,
                                    **times)  # fmt: skip
        for name in {e[0] for e in person_events}:
            times = [e[1] for e in person_events if e[0] == name]
            ActivitySummary.objects.create(
                person=person, name=name, count=len(times), first_at=min(times),
                last_at=max(times),
            )  # fmt: skip
    return [s.pk for s in segments], members


def load_records() -> list[PersonRecord]:
    """Everyone as the database holds them, numbers read exactly."""
    exact = lambda raw: json.loads(raw, parse_float=Decimal)  # noqa: E731
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, attributes::text, unsubscribed FROM segments_person")
        records = {row[0]: PersonRecord(row[0], exact(row[1]), row[2]) for row in cursor}
        cursor.execute("SELECT person_id, name, timestamp, data::text FROM segments_event")
        for person_id, name, timestamp, data in cursor.fetchall():
            records[person_id].events.append(EventRecord(name, timestamp, exact(data)))
        columns = list(DELIVERY_COLUMNS.values())
        cursor.execute(f"SELECT person_id, is_test, {', '.join(columns)} FROM messaging_delivery")
        for person_id, is_test, *times in cursor.fetchall():
            records[person_id].deliveries.append(
                {"is_test": is_test, **dict(zip(columns, times, strict=True))}
            )
    return list(records.values())


@settings(
    max_examples=500, deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)  # fmt: skip
@given(data=st.data())
def test_the_compiled_query_and_the_reference_agree_on_every_person(cast, data):
    tree = data.draw(st.one_of(trees, active_trees), label="tree")
    rows = data.draw(people_for(tree), label="people")
    scope_mask = data.draw(st.lists(st.booleans(), min_size=8, max_size=8), label="scope")
    with cast.acme, transaction.atomic():
        segment_ids, members = store(rows)
        context = Context(segments={key: [] for key in segment_ids})
        node = parse_rule(with_segment_ids(tree, segment_ids), context)
        records = load_records()
        expected = {r.id for r in records if matches(node, r, NOW, members)}
        query = compile_rule(node, NOW)
        with connection.cursor() as cursor:
            cursor.execute(query.sql, query.params)
            found = {row[0] for row in cursor}
            assert found == expected
            event(
                "matched "
                + ("none" if not found else "all" if len(found) == len(records) else "some")
            )
            # The editor's count, which counts some rules from their subqueries alone.
            count = count_query(node, NOW)
            cursor.execute(count.sql, count.params)
            assert cursor.fetchone()[0] == len(expected)
            driven = requires_activity(node)
            read = "reading people" if reads_person(node) else "reading no one"
            event(f"driven by its subqueries, {read}" if driven else "decided over people")
            # Asked about some people only (as the drain asks), the answer is the same for them.
            some = [r.id for r, keep in zip(records, scope_mask, strict=False) if keep]
            scoped = compile_rule(node, NOW, people=some)
            cursor.execute(scoped.sql, scoped.params)
            assert {row[0] for row in cursor} == expected & set(some)
            # Decided beside another rule (as the drain decides all segments at once), too.
            together = compile_rules([parse_rule({"type": "subscription", "state": "subscribed"}),
                                      node], NOW, some)  # fmt: skip
            cursor.execute(together.sql, together.params)
            assert {row[0] for row in cursor if row[2]} == expected & set(some)
        transaction.set_rollback(True)
