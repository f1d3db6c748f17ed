"""Rule trees: what validation accepts, and errors that name the bad node."""

import pytest

from segments.rules import (
    Context,
    InvalidRule,
    dump_rule,
    is_time_dependent,
    parse_rule,
    referenced_segments,
)


def errors_of(data, context: Context | None = None) -> list[tuple[str, str]]:
    with pytest.raises(InvalidRule) as raised:
        parse_rule(data, context)
    return [(error.path, error.message) for error in raised.value.errors]


def group(*children, op="and") -> dict:
    return {"type": "group", "op": op, "children": list(children)}


def attribute(name="plan", operator="equals", value="pro") -> dict:
    return {"type": "attribute", "name": name, "operator": operator, "value": value}


def test_an_error_names_the_node_by_its_path():
    rule = group(attribute(), attribute(), group(attribute(operator="greater_than", value="x")))
    assert errors_of(rule) == [("rules.children[2].children[0].value", "must be a number")]


def test_every_problem_is_reported_at_once():
    rule = group(attribute(name=""), {"type": "teleport"}, op="xor")
    assert [path for path, _ in errors_of(rule)] == [
        "rules.op", "rules.children[0].name", "rules.children[1].type",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("operator", "value", "message"),
    [
        ("between", [5, 1], "the lower bound must not be above the upper bound"),
        ("in", [], "must be a list of 1 to 1000 values"),
        ("contains", "", "must be non-empty text"),
        ("before", "yesterday", "must be a date (2025-01-31) or an ISO-8601 date and time"),
        ("within_last_days", 0, "must be a whole number of days from 1 to 36500"),
        ("equals", "a\x00b", "must be at most 1000 bytes of text"),
    ],
)
def test_values_must_fit_their_operator(operator, value, message):
    assert errors_of(attribute(operator=operator, value=value)) == [("rules.value", message)]


def test_event_conditions_check_counts_windows_and_filters():
    rule = {
        "type": "event", "name": "purchase", "operator": "at_least", "count": 0,
        "within_days": 7, "from": "2025-01-01",
        "filters": [{"property": "price", "operator": "less_than", "value": "cheap"}],
    }  # fmt: skip
    assert errors_of(rule) == [
        ("rules.count", "must be from 1 to 1000000"),
        ("rules.within_days", "use either within_days or from and to, not both"),
        ("rules.filters[0].value", "must be a number"),
    ]


def test_a_segment_cannot_read_itself_or_a_segment_that_reads_it():
    graph = {2: [3], 3: [1], 4: []}
    own = Context(segments=graph, own_id=1)
    assert errors_of({"type": "segment", "segment": 1}, own) == [
        ("rules.segment", "a segment cannot include itself")
    ]
    assert errors_of({"type": "segment", "segment": 2}, own) == [
        ("rules.segment", "segment 2 already depends on this segment; reading it here would "
         "make a cycle"),
    ]  # fmt: skip
    assert errors_of({"type": "segment", "segment": 9}, own) == [
        ("rules.segment", "there is no segment 9")
    ]
    assert parse_rule({"type": "segment", "segment": 4}, own)


def test_email_activity_is_validated_and_makes_the_rule_swept():
    rule = {"type": "email", "activity": "opened", "operator": "at_least", "count": 2,
            "within_days": 30}  # fmt: skip
    node = parse_rule(rule)
    assert dump_rule(node) == rule
    assert errors_of({**rule, "activity": "liked"}) == [
        ("rules.activity", "must be one of sent, delivered, opened, clicked, bounced")
    ]
    assert errors_of({**rule, "count": 0}) == [("rules.count", "must be from 1 to 1000000")]
    # Deliveries are written by messaging, not the drain: the sweep keeps these current.
    assert is_time_dependent(parse_rule({"type": "email", "activity": "bounced"}))


def test_depth_and_size_are_bounded():
    deep = attribute()
    for _ in range(7):
        deep = group(deep)
    assert ("rules.children[0].children[0].children[0].children[0].children[0].children[0]",
            "groups may nest at most 6 deep") in errors_of(deep)  # fmt: skip
    assert any("at most 100" in message for _, message in errors_of(group(*[attribute()] * 101)))


def test_a_tree_survives_being_stored_and_read_back():
    rule = group(
        attribute(operator="between", value=[1, 2.5]),
        {"type": "event", "name": "login", "operator": "exactly", "count": 2,
         "from": "2025-01-01", "to": "2025-01-31",
         "filters": [{"property": "plan", "operator": "exists"}]},
        {"type": "subscription", "state": "unsubscribed"},
        group({"type": "segment", "segment": 4, "operator": "not_in"}, op="not"),
    )  # fmt: skip
    node = parse_rule(rule, Context(segments={4: []}))
    assert parse_rule(dump_rule(node), Context(segments={4: []})) == node
    assert referenced_segments(node) == [4]
    assert not is_time_dependent(node)
    assert is_time_dependent(parse_rule(attribute(operator="more_than_days_ago", value=3)))


def test_a_rule_says_what_it_reads():
    from segments.rules import reads

    rule = parse_rule({"type": "group", "op": "or", "children": [
        {"type": "attribute", "name": "plan", "operator": "equals", "value": "pro"},
        {"type": "group", "op": "not", "children": [
            {"type": "event", "name": "purchase", "operator": "performed", "within_days": 7}]},
        {"type": "email", "activity": "opened", "operator": "performed"},
        {"type": "subscription", "state": "unsubscribed"},
    ]})  # fmt: skip
    assert reads(rule) == ["attribute:plan", "email", "event:purchase", "subscription"]


def test_equality_with_text_no_number_or_boolean_spells_is_one_containment_test():
    from datetime import UTC, datetime

    from segments.compiler import compile_rule

    def sql(value) -> str:
        rule = {"type": "attribute", "name": "plan", "operator": "equals", "value": value}
        return compile_rule(parse_rule(rule), datetime.now(UTC)).sql

    assert "@>" in sql("pro")
    # A JSON number or boolean has these texts too: compared as text, as the evaluator does.
    assert "@>" not in sql("5") and "@>" not in sql("true") and "@>" not in sql(5)
